"""Per-batch throughput of a model step and the default number of loader workers, apart from the loader so
Dagster wiring can use them without importing torch."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields


def default_workers() -> int:
    """Leave a core to the process that runs the model; more than 4 rarely pays on the CPU a GPU pod gets."""
    return min(4, max(0, (os.cpu_count() or 1) - 1))


@dataclass
class LoaderStats:
    """Where a step's time went: waiting for the loader's next batch, or in the model (the consumer)."""

    images: int = 0
    batches: int = 0
    input_wait_s: float = 0.0
    model_s: float = 0.0
    wall_s: float = 0.0

    def add(self, other: LoaderStats) -> None:
        for name in (f.name for f in fields(self)):
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def as_metadata(self) -> dict[str, float | int]:
        return {
            "images": self.images,
            "batches": self.batches,
            "images_per_s": round(self.images / self.wall_s, 2) if self.wall_s > 0 else 0.0,
            "input_wait_s": round(self.input_wait_s, 3),
            "model_s": round(self.model_s, 3),
            "wall_s": round(self.wall_s, 3),
        }
