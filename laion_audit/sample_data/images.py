"""Synthetic LAION-like images: real people photos that ship inside installed packages, pasted at varied
positions and scales on varied backgrounds, plus images without people.

The people are scikit-image's astronaut (Eileen Collins) and camera (cameraman) and matplotlib's Grace
Hopper portrait, so detectors see real human appearance without any download; the paste boxes are the
ground truth of where a person is.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
from PIL import Image


@dataclass(frozen=True)
class PastedPerson:
    source: str
    box: tuple[int, int, int, int]  # xyxy in final-image pixels


@cache
def people_photos() -> dict[str, Image.Image]:
    from matplotlib import cbook
    from skimage import data

    with cbook.get_sample_data("grace_hopper.jpg") as handle:
        hopper = Image.open(handle).convert("RGB")
        hopper.load()
    return {
        "astronaut": Image.fromarray(data.astronaut()).convert("RGB"),
        "camera": Image.fromarray(data.camera()).convert("RGB"),
        "grace_hopper": hopper,
    }


@cache
def scenes_without_people() -> dict[str, Image.Image]:
    from skimage import data

    return {name: Image.fromarray(getattr(data, name)()).convert("RGB") for name in ("chelsea", "coffee", "rocket")}


def background(rng: np.random.Generator, width: int, height: int) -> Image.Image:
    kind = rng.integers(3)
    if kind == 0:
        color = rng.integers(0, 256, size=3, dtype=np.uint8)
        return Image.new("RGB", (width, height), tuple(int(c) for c in color))
    if kind == 1:
        start, end = rng.integers(0, 256, size=(2, 3))
        ramp = np.linspace(0.0, 1.0, width)[None, :, None]
        pixels = start[None, None, :] * (1 - ramp) + end[None, None, :] * ramp
        return Image.fromarray(np.repeat(pixels, height, axis=0).astype(np.uint8))
    noise = rng.normal(128, 40, size=(height // 8 + 1, width // 8 + 1, 3)).clip(0, 255).astype(np.uint8)
    return Image.fromarray(noise).resize((width, height), Image.Resampling.BILINEAR)


def compose(
    rng: np.random.Generator, n_people: int, size_bounds: tuple[int, int]
) -> tuple[Image.Image, list[PastedPerson]]:
    """An image with ``n_people`` pasted people (0 gives a background or a scene without people)."""
    low, high = size_bounds
    width, height = (int(v) for v in rng.integers(low, high + 1, size=2))
    if n_people == 0 and rng.random() < 0.5:
        scenes = scenes_without_people()
        name = sorted(scenes)[int(rng.integers(len(scenes)))]
        return scenes[name].resize((width, height), Image.Resampling.BILINEAR), []
    canvas = background(rng, width, height)
    photos = people_photos()
    names = sorted(photos)
    people: list[PastedPerson] = []
    for _ in range(n_people):
        name = names[int(rng.integers(len(names)))]
        photo = photos[name]
        # Mostly large enough for the 30-px validity rule; about one in ten deliberately small.
        fraction = rng.uniform(0.08, 0.15) if rng.random() < 0.1 else rng.uniform(0.35, 0.8)
        scale = fraction * min(width, height) / max(photo.size)
        w, h = max(8, int(photo.width * scale)), max(8, int(photo.height * scale))
        x = int(rng.integers(0, max(1, width - w + 1)))
        y = int(rng.integers(0, max(1, height - h + 1)))
        canvas.paste(photo.resize((w, h), Image.Resampling.BILINEAR), (x, y))
        people.append(PastedPerson(name, (x, y, x + w, y + h)))
    return canvas, people
