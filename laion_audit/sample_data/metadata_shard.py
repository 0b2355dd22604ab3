"""A text-only shard in the LAION-400M metadata format (no images), as the 32 released parquet files have it.

Birhane et al.'s audit and the alt-text analyses run on this format, so the pipeline must accept a shard that
has captions and URLs but nothing to detect people in. A few rows have a null TEXT, as the release does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from laion_audit.sample_data.caption_counts import caption_hits
from laion_audit.sample_data.captions import make_caption
from laion_audit.sample_data.good_samples import (
    CC_BY,
    LICENSE_RATE_CC,
    PERSON_RATE,
    draw_nsfw_flag,
    sample_key,
    shard_streams,
    truth_row,
)

METADATA_SCHEMA = pa.schema([
    ("SAMPLE_ID", pa.int64()),
    ("URL", pa.string()),
    ("TEXT", pa.string()),
    ("LICENSE", pa.string()),
    ("NSFW", pa.string()),
    ("similarity", pa.float64()),
    ("WIDTH", pa.int64()),
    ("HEIGHT", pa.int64()),
])


def is_null_text_row(index: int) -> bool:
    """Rows 13, 110, 207, ...: about one in a hundred, never the first."""
    return index % 97 == 13


def metadata_shard_name(shard_id: int) -> str:
    """Named like the LAION-400M release (``part-00000-<uuid>.snappy.parquet``), with no uuid."""
    return f"part-{shard_id:05d}-laion-metadata.snappy.parquet"


def write_metadata_shard(path: str | Path, shard_id: int, rows: int, *, seed: int = 0) -> list[dict[str, Any]]:
    """Write ``rows`` LAION-400M metadata rows to ``path``; return their ground truth.

    Sample keys are the row index as 9 digits (what the reader calls them); people are unknown (no images).
    """
    _, text_rng = shard_streams(seed, shard_id)
    shard = f"{shard_id:05d}"
    columns: dict[str, list] = {name: [] for name in METADATA_SCHEMA.names}
    truths = []
    for index in range(rows):
        planted = make_caption(text_rng, sample_key(shard_id, index), mentions_person=text_rng.random() < PERSON_RATE)
        text = None if is_null_text_row(index) else planted.text
        hits = caption_hits(text, planted.url)
        flag = draw_nsfw_flag(text_rng, bool(hits["nsfw_text_hits"] or hits["nsfw_url_hits"]))
        columns["SAMPLE_ID"].append(shard_id * 100_000 + index)
        columns["URL"].append(planted.url)
        columns["TEXT"].append(text)
        columns["LICENSE"].append(CC_BY if text_rng.random() < LICENSE_RATE_CC else "?")
        columns["NSFW"].append(flag)
        columns["similarity"].append(round(float(text_rng.uniform(0.28, 0.4)), 4))
        columns["WIDTH"].append(int(text_rng.integers(160, 1024)))
        columns["HEIGHT"].append(int(text_rng.integers(160, 1024)))
        truths.append(truth_row(
            shard=shard, key=f"{index:09d}", source_format="metadata_parquet", caption=text, url=planted.url,
            planted=planted if text is not None else None, nsfw_flag=flag, people=None,
            bad_kind=None if text is not None else "missing_caption",
        ))
    pq.write_table(pa.table(columns, schema=METADATA_SCHEMA), Path(path))
    return truths
