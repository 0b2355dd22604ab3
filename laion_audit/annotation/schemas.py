"""Schemas of the person-centric tables (boxes, votes, labels, captions).

Per-person tables are keyed by (shard, key, box_id). A sample without a usable person still gets one row
(``box_id`` null) saying why — no person found, or the upstream error — so every table accounts for every
sample key. Every row names the model and the weights fingerprint that produced it; the store adds the code
version and the Dagster run id.
"""

from __future__ import annotations

import pyarrow as pa

GENDER_CLASSES = ("male", "female", "unclear", "mixed")
RACE_CLASSES = (
    "white",
    "black",
    "east_asian",
    "latino",
    "middle_eastern",
    "south_asian",
    "southeast_asian",
    "unclear",
)

_KEY_FIELDS = [
    pa.field("shard", pa.string(), nullable=False),
    pa.field("key", pa.string(), nullable=False),
    pa.field("box_id", pa.int32()),
]
_STATUS_FIELDS = [
    pa.field("status", pa.string(), nullable=False),
    pa.field("error", pa.string()),
]
_MODEL_FIELDS = [
    pa.field("model_name", pa.string(), nullable=False),
    pa.field("model_fingerprint", pa.string(), nullable=False),
    pa.field("random_weights", pa.bool_(), nullable=False),
]

PERSON_BOXES_SCHEMA = pa.schema(
    _KEY_FIELDS
    + [
        pa.field("x1", pa.float32()),
        pa.field("y1", pa.float32()),
        pa.field("x2", pa.float32()),
        pa.field("y2", pa.float32()),
        pa.field("confidence", pa.float32()),
        pa.field("area_fraction", pa.float32()),
        pa.field("valid", pa.bool_()),
        pa.field("image_width", pa.int32()),
        pa.field("image_height", pa.int32()),
        pa.field("n_boxes", pa.int32(), nullable=False),
    ]
    + _STATUS_FIELDS
    + _MODEL_FIELDS
)

VOTES_SCHEMA = pa.schema(
    _KEY_FIELDS
    + [
        pa.field("member", pa.string(), nullable=False),
        pa.field("member_fingerprint", pa.string(), nullable=False),
        pa.field("options", pa.string(), nullable=False),  # JSON list: the lettered options as shown
        pa.field("raw_answer", pa.string()),
        pa.field("parsed", pa.string()),  # the class the answer maps to, null when unparseable
        pa.field("consensus", pa.string()),  # the crop's consensus class, null when the rule is not met
        pa.field("consensus_rule", pa.string(), nullable=False),
    ]
    + _STATUS_FIELDS
    + [pa.field("random_weights", pa.bool_(), nullable=False)]
)


def label_schema(classes: tuple[str, ...]) -> pa.Schema:
    return pa.schema(
        _KEY_FIELDS
        + [pa.field("label", pa.string())]
        + [pa.field(f"p_{name}", pa.float32()) for name in classes]
        + _STATUS_FIELDS
        + _MODEL_FIELDS
    )


GENDER_LABELS_SCHEMA = label_schema(GENDER_CLASSES)
RACE_LABELS_SCHEMA = label_schema(RACE_CLASSES)

PERSON_CAPTIONS_SCHEMA = pa.schema(
    _KEY_FIELDS + [pa.field("caption", pa.string())] + _STATUS_FIELDS + _MODEL_FIELDS
)
