"""Synthetic LAION-like images: real people photos that ship inside installed packages, pasted at seeded
positions and scales on varied backgrounds, plus images without people.

The people are scikit-image's astronaut (Eileen Collins) and camera (the cameraman) and matplotlib's Grace
Hopper portrait, so a real detector sees real human appearance without any download. Each paste records two
boxes in final-image pixels: the pasted rectangle and the person inside it (from a box measured by hand on
the source photo), so detector tests can choose how strict to be. Images without people are plain
backgrounds or scikit-image's chelsea (a cat), coffee and rocket.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache, lru_cache

import numpy as np
from PIL import Image

# Person extent in each source photo, xyxy in source pixels, measured by eye on a 64-px grid.
PERSON_BOX_IN_SOURCE = {
    "astronaut": (20, 15, 365, 512),  # 512x512; the held helmet and the shuttle model excluded
    "camera": (0, 65, 330, 512),  # 512x512; the tripod excluded
    "grace_hopper": (15, 20, 512, 600),  # 512x600
}
SCENES_WITHOUT_PEOPLE = ("chelsea", "coffee", "rocket")
SMALL_PERSON_RATE = 0.1  # pastes whose longer side is 16-36 px: below the paper's size filters
MIN_LONG_SIDE = 48  # other pastes: the shorter side of the person photo stays >= 40 px
FLIP_RATE = 0.5
SIZE_STEP = 8  # pasted photos' longer sides are multiples of this (see _person_photo)


@dataclass(frozen=True)
class PastedPerson:
    source: str
    box: tuple[int, int, int, int]  # pasted rectangle, xyxy in final-image pixels
    person_box: tuple[int, int, int, int]  # the person inside it, xyxy in final-image pixels
    flipped: bool

    def as_dict(self) -> dict:
        return {"source": self.source, "xyxy": list(self.box), "person_xyxy": list(self.person_box),
                "flipped": self.flipped}


def _pyramid(image: Image.Image) -> tuple[Image.Image, ...]:
    """Halvings down to ~32 px: resizing from the nearest larger level is several times faster than from the
    full photo, which matters when a benchmark asks for 10,000 images."""
    levels = [image]
    while min(levels[-1].size) >= 64:
        levels.append(levels[-1].reduce(2))
    return tuple(levels)


def _resize(levels: tuple[Image.Image, ...], size: tuple[int, int]) -> Image.Image:
    source = levels[0]
    for level in levels:
        if level.width >= size[0] and level.height >= size[1]:
            source = level
    return source.resize(size, Image.Resampling.BILINEAR)


@cache
def people_photos() -> dict[tuple[str, bool], tuple[Image.Image, ...]]:
    """``{(name, flipped): pyramid}`` for the three people photos."""
    from matplotlib import cbook
    from skimage import data

    with cbook.get_sample_data("grace_hopper.jpg") as handle:
        hopper = Image.open(handle).convert("RGB")
        hopper.load()
    photos = {
        "astronaut": Image.fromarray(data.astronaut()).convert("RGB"),
        "camera": Image.fromarray(data.camera()).convert("RGB"),
        "grace_hopper": hopper,
    }
    return {
        (name, flipped): _pyramid(photo.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if flipped else photo)
        for name, photo in photos.items()
        for flipped in (False, True)
    }


@lru_cache(maxsize=6 * 512 // SIZE_STEP)
def _person_photo(name: str, flipped: bool, long_side: int) -> Image.Image:
    """A people photo resized so its longer side is ``long_side`` px (shared, never modified).

    Resizing is most of the cost of an image; reusing the resized photos makes a 10,000-sample benchmark shard
    several seconds faster, for at most ~70 MB of cached pixels.
    """
    levels = people_photos()[(name, flipped)]
    source_w, source_h = levels[0].size
    scale = long_side / max(source_w, source_h)
    return _resize(levels, (max(1, round(source_w * scale)), max(1, round(source_h * scale))))


@cache
def scenes_without_people() -> dict[str, tuple[Image.Image, ...]]:
    from skimage import data

    return {name: _pyramid(Image.fromarray(getattr(data, name)()).convert("RGB")) for name in SCENES_WITHOUT_PEOPLE}


def background(rng: np.random.Generator, width: int, height: int) -> Image.Image:
    """A solid colour, a horizontal or vertical gradient, or smooth noise."""
    kind = int(rng.integers(3))
    if kind == 0:
        return Image.new("RGB", (width, height), tuple(int(c) for c in rng.integers(0, 256, size=3)))
    if kind == 1:
        start, end = rng.integers(0, 256, size=(2, 3)).astype(np.float32)
        vertical = bool(rng.integers(2))
        ramp = np.linspace(0.0, 1.0, height if vertical else width, dtype=np.float32)
        line = (start[None, :] * (1 - ramp[:, None]) + end[None, :] * ramp[:, None]).astype(np.uint8)
        pixels = np.broadcast_to(line[:, None, :], (height, width, 3)) if vertical else \
            np.broadcast_to(line[None, :, :], (height, width, 3))
        return Image.fromarray(np.ascontiguousarray(pixels))
    noise = rng.integers(40, 216, size=(height // 8 + 1, width // 8 + 1, 3), dtype=np.uint8)
    # Smooth at half size, then double: a quarter of the cost of a full-size bilinear upsampling.
    half = Image.fromarray(noise).resize((width // 2 + 1, height // 2 + 1), Image.Resampling.BILINEAR)
    return half.resize((width, height), Image.Resampling.NEAREST)


def _paste_person(
    rng: np.random.Generator, canvas: Image.Image, cell: tuple[int, int, int, int]
) -> PastedPerson:
    """Paste one person photo somewhere inside ``cell`` (xyxy) of ``canvas``."""
    names = sorted(PERSON_BOX_IN_SOURCE)
    name = names[int(rng.integers(len(names)))]
    flipped = bool(rng.random() < FLIP_RATE)
    source_w, source_h = people_photos()[(name, flipped)][0].size
    cell_w, cell_h = cell[2] - cell[0], cell[3] - cell[1]
    if rng.random() < SMALL_PERSON_RATE:
        long_side = rng.uniform(16, 36)
    else:
        long_side = max(MIN_LONG_SIDE, rng.uniform(0.45, 0.95) * min(cell_w, cell_h))
    if source_h >= source_w:
        fits = min(cell_w * source_h / source_w, cell_h)
    else:
        fits = min(cell_h * source_w / source_h, cell_w)
    long_side = min(SIZE_STEP * round(long_side / SIZE_STEP), SIZE_STEP * int(fits // SIZE_STEP))
    photo = _person_photo(name, flipped, long_side)
    w, h = photo.size
    x = cell[0] + int(rng.integers(0, cell_w - w + 1))
    y = cell[1] + int(rng.integers(0, cell_h - h + 1))
    canvas.paste(photo, (x, y))
    px1, py1, px2, py2 = PERSON_BOX_IN_SOURCE[name]
    if flipped:
        px1, px2 = source_w - px2, source_w - px1
    sx, sy = w / source_w, h / source_h
    person = (x + round(px1 * sx), y + round(py1 * sy), x + round(px2 * sx), y + round(py2 * sy))
    return PastedPerson(name, (x, y, x + w, y + h), person, flipped)


def compose(
    rng: np.random.Generator, n_people: int, size_bounds: tuple[int, int]
) -> tuple[Image.Image, list[PastedPerson]]:
    """An RGB image whose sides lie within ``size_bounds`` with ``n_people`` (0, 1 or 2) pasted people.

    Two people get one half of the image each (split along the longer side), so neither hides the other
    and both ground-truth boxes stay fully visible.
    """
    low, high = size_bounds
    width, height = (int(v) for v in rng.integers(low, high + 1, size=2))
    if n_people == 0 and rng.random() < 0.5:
        scenes = scenes_without_people()
        name = SCENES_WITHOUT_PEOPLE[int(rng.integers(len(SCENES_WITHOUT_PEOPLE)))]
        return _resize(scenes[name], (width, height)), []
    canvas = background(rng, width, height)
    if n_people <= 1:
        cells = [(0, 0, width, height)][:n_people]
    elif width >= height:
        cells = [(0, 0, width // 2, height), (width // 2, 0, width, height)]
    else:
        cells = [(0, 0, width, height // 2), (0, height // 2, width, height)]
    return canvas, [_paste_person(rng, canvas, cell) for cell in cells]
