"""A face-ratings dataset in the One Million Impressions layout, checked before any model runs.

Layout (Peterson et al. 2022, `jcpeterson/omi`): ``<folder>/attribute_means.csv`` with a ``stimulus`` column and
one column of mean ratings per attribute, and ``<folder>/images/{stimulus}.jpg``. OMI is CC BY-NC-SA: users point
the project at their own copy; it is never bundled.

What is wrong with the table itself (a missing or unexpected column, a duplicate stimulus, a rating that is not a
number) is an error naming every bad cell, since any analysis of such a table would be wrong. A stimulus without
an image and an image without a rating are recorded (``missing_images``, ``unrated_images``) and reported with
the results, never dropped silently; ``strict=True`` makes them errors too.
"""

from __future__ import annotations

import csv
import hashlib
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

MEANS_FILE = "attribute_means.csv"
IMAGES_DIR = "images"
STIMULUS = "stimulus"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
_STIMULUS_NAME = re.compile(r"[A-Za-z0-9_.-]+")
LISTED = 10  # bad cells named in an error message


class RatingsDatasetError(ValueError):
    """The ratings folder cannot be analysed as it is; the message lists what to fix."""


@dataclass(frozen=True)
class RatingsDataset:
    folder: Path
    attributes: list[str]
    stimuli: list[str]  # rated stimuli that have an image, in the table's order
    means: np.ndarray  # (len(stimuli), len(attributes)) float64
    images: dict[str, Path]
    missing_images: list[str] = field(default_factory=list)  # rated, but no image file
    unrated_images: list[str] = field(default_factory=list)  # an image file without a row in the table
    sha256: str = ""  # of the table's bytes and every image file's name and content

    def problems_summary(self) -> dict[str, object]:
        return {"stimuli_analysed": len(self.stimuli), "stimuli_without_image": len(self.missing_images),
                "images_without_rating": len(self.unrated_images),
                "stimuli_without_image_listed": self.missing_images[:LISTED],
                "images_without_rating_listed": self.unrated_images[:LISTED]}


def _listed(items: list[str]) -> str:
    more = f" (+{len(items) - LISTED} more)" if len(items) > LISTED else ""
    return ", ".join(items[:LISTED]) + more


def _image_files(folder: Path) -> dict[str, Path]:
    directory = folder / IMAGES_DIR
    if not directory.is_dir():
        raise RatingsDatasetError(f"{folder}: no {IMAGES_DIR}/ folder (expected {IMAGES_DIR}/{{stimulus}}.jpg)")
    found: dict[str, Path] = {}
    duplicates = []
    for path in sorted(directory.iterdir()):
        if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
            if path.stem in found:
                duplicates.append(path.name)
            found[path.stem] = path
    if duplicates:
        raise RatingsDatasetError(f"{directory}: several images for one stimulus: {_listed(duplicates)}")
    return found


def _parse_rows(path: Path, attributes: list[str]) -> tuple[list[str], np.ndarray, bytes]:
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise RatingsDatasetError(f"{path}: not UTF-8 text ({exc})") from None
    reader = csv.reader(text.splitlines())
    header = next(reader, None)
    if not header:
        raise RatingsDatasetError(f"{path}: empty file")
    header = [name.strip() for name in header]
    problems = []
    if header[0] != STIMULUS:
        problems.append(f"the first column must be {STIMULUS!r}, found {header[0]!r}")
    columns = header[1:]
    missing = [a for a in attributes if a not in columns]
    extra = [c for c in columns if c not in attributes]
    repeated = sorted({c for c in columns if columns.count(c) > 1})
    if missing:
        problems.append(f"missing attribute columns: {', '.join(missing)}")
    if extra:
        problems.append(f"columns that are not attributes of the prompt table: {', '.join(extra)}")
    if repeated:
        problems.append(f"repeated columns: {', '.join(repeated)}")
    if problems:
        raise RatingsDatasetError(f"{path}: " + "; ".join(problems))
    order = [columns.index(a) + 1 for a in attributes]
    stimuli, values, bad, short, names = [], [], [], [], []
    for line, row in enumerate(reader, start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            short.append(f"line {line} has {len(row)} cells, expected {len(header)}")
            continue
        stimulus = row[0].strip()
        if not _STIMULUS_NAME.fullmatch(stimulus):
            names.append(f"line {line}: {stimulus!r}")
            continue
        numbers = []
        for attribute, index in zip(attributes, order, strict=True):
            try:
                number = float(row[index])
            except ValueError:
                number = math.nan
            if not math.isfinite(number):
                bad.append(f"{stimulus}/{attribute}={row[index]!r}")
            numbers.append(number)
        stimuli.append(stimulus)
        values.append(numbers)
    duplicated = sorted({s for s in stimuli if stimuli.count(s) > 1}) if len(set(stimuli)) != len(stimuli) else []
    for kind, items in (("rows with the wrong number of cells", short), ("invalid stimulus names", names),
                        ("ratings that are not finite numbers", bad), ("stimuli listed more than once", duplicated)):
        if items:
            problems.append(f"{len(items)} {kind}: {_listed(items)}")
    if problems:
        raise RatingsDatasetError(f"{path}: " + "; ".join(problems))
    return stimuli, np.asarray(values, dtype=np.float64).reshape(len(stimuli), len(attributes)), data


def load_ratings(folder: str | Path, attributes: list[str], *, strict: bool = False) -> RatingsDataset:
    """The dataset at ``folder`` with ratings for ``attributes`` (the prompt table's), checked.

    Raises RatingsDatasetError for a broken table, or, with ``strict``, for any stimulus/image mismatch.
    """
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise RatingsDatasetError(f"ratings folder not found: {folder}")
    means_path = folder / MEANS_FILE
    if not means_path.is_file():
        raise RatingsDatasetError(f"{folder}: no {MEANS_FILE} (a {STIMULUS} column plus one column per attribute)")
    images = _image_files(folder)
    stimuli, means, table_bytes = _parse_rows(means_path, attributes)
    rated = set(stimuli)
    missing = [s for s in stimuli if s not in images]
    unrated = sorted((s for s in images if s not in rated), key=lambda s: (len(s), s))
    if strict and (missing or unrated):
        raise RatingsDatasetError(
            f"{folder}: {len(missing)} rated stimuli without an image ({_listed(missing)}) and {len(unrated)} images "
            f"without a rating ({_listed(unrated)})")
    keep = [i for i, s in enumerate(stimuli) if s in images]
    if not keep:
        raise RatingsDatasetError(f"{folder}: no rated stimulus has an image in {IMAGES_DIR}/")
    digest = hashlib.sha256(table_bytes)
    for stem in sorted(images):  # image contents too: a replaced image is another dataset
        digest.update(f"\n{images[stem].name}:{hashlib.sha256(images[stem].read_bytes()).hexdigest()}".encode())
    kept = [stimuli[i] for i in keep]
    return RatingsDataset(folder, list(attributes), kept, means[keep], {s: images[s] for s in kept}, missing, unrated,
                          digest.hexdigest())
