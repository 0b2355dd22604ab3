"""How DataLoader worker processes are started: from a clean server process, never by forking the run.

A Dagster run, polars and torch keep threads in the parent process. Forking copies their locks in whatever
state they are in, so a forked worker can block forever on a lock another thread held at the moment of the
fork — seen in the annotation chain test as a worker stuck right after fork(). The forkserver start method forks
workers from a single-threaded server process instead (spawn where there is no forkserver). The price is that a
worker's dataset is pickled to it, so datasets and their transforms must be picklable.
"""

from __future__ import annotations

import multiprocessing
from multiprocessing.context import BaseContext

WORKER_MODULES = ("laion_audit.annotation.image_loader", "laion_audit.annotation.training_batches")


def worker_context(workers: int) -> BaseContext | None:
    """The multiprocessing context for ``workers`` DataLoader processes (None: no workers, nothing to start)."""
    if workers == 0:
        return None
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    # The server imports the worker code (and with it torch and PIL) once; each worker forks from it with those
    # modules loaded instead of importing torch anew. No effect once the server has started.
    context.set_forkserver_preload(list(WORKER_MODULES))
    return context
