"""The `samples` table: one row per sample key read from a shard, whatever state the sample was in.

Keeping failures as rows (``status`` = "error", ``error_kind``, ``error``) rather than dropping them is what
lets every downstream table account for every key, and lets a user select failed samples for a retry the way
img2dataset users do with its per-shard parquet. Keys that parquet lists as downloaded but the tar lacks are
rows too (``missing_from_tar``, metadata from the parquet), so every key of the sidecar is accounted for.
"""

from __future__ import annotations

import pyarrow as pa

STATUS_OK = "ok"
STATUS_ERROR = "error"

# Codes for error_kind; a sample with several problems lists them comma-separated in this order.
ERROR_KINDS = (
    "missing_image",
    "corrupt_image",
    "truncated_image",
    "decompression_bomb",
    "sha256_mismatch",
    "missing_caption",
    "missing_url",
    "non_utf8_caption",
    "missing_json",
    "malformed_json",
    "bad_metadata_value",  # a metadata value of the wrong type or out of range (nulled in its column)
    "truncated_tar",
    "duplicate_key",
    "non_utf8_key",  # a tar member name that is not UTF-8 (the key is written with \\x escapes)
    "missing_from_tar",  # img2dataset's sidecar parquet lists the key as downloaded, the tar lacks it
)

SAMPLES_SCHEMA = pa.schema(
    [
        pa.field("shard", pa.string(), nullable=False),
        pa.field("key", pa.string(), nullable=False),
        pa.field("source_format", pa.string(), nullable=False),
        pa.field("sample_id", pa.int64()),
        pa.field("url", pa.string()),
        pa.field("caption", pa.string()),
        pa.field("width", pa.int64()),
        pa.field("height", pa.int64()),
        pa.field("nsfw", pa.string()),
        pa.field("similarity", pa.float64()),
        pa.field("license", pa.string()),
        pa.field("image_member", pa.string()),
        pa.field("image_format", pa.string()),
        # EXIF orientation (1-8) applied when decoding; width/height are after it, as a viewer shows the image.
        pa.field("image_orientation", pa.int64()),
        pa.field("image_bytes", pa.int64()),
        pa.field("sha256", pa.string()),
        pa.field("has_image", pa.bool_(), nullable=False),
        pa.field("status", pa.string(), nullable=False),
        pa.field("error_kind", pa.string()),
        pa.field("error", pa.string()),
    ]
)
