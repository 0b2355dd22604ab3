"""A small ratings dataset in the One Million Impressions layout, with planted relations, for tests, the demo and
the benchmark (the real OMI data is CC BY-NC-SA and never bundled).

Each stimulus is a JPEG of a face-like ellipse on a background. Two pixel statistics drive some attributes:
brightness (mean luminance) raises `happy` and `age` together, so the human correlation matrix has a planted
strong pair; the ellipse's redness lowers `skin-color`. Every other attribute is seeded noise. The ground truth
returned says which is which.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from laion_audit.impressions.lexicon import load_prompt_pairs

BRIGHTNESS_DRIVEN = ("happy", "age")
REDNESS_DRIVEN = ("skin-color",)


def write_impressions_dataset(folder: str | Path, n: int = 40, *, seed: int = 0, size: int = 64) -> dict:
    """Write ``folder``/images/{1..n}.jpg and ``folder``/attribute_means.csv; return the ground truth."""
    folder = Path(folder)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    attributes = [pair.attribute for pair in load_prompt_pairs()]
    rng = np.random.default_rng(seed)
    brightness = rng.uniform(0.1, 0.9, n)
    redness = rng.uniform(0.0, 1.0, n)
    for i in range(n):
        base = int(255 * brightness[i])
        image = Image.new("RGB", (size, size), (base, base, base))
        face = (int(120 + 135 * redness[i]), int(150 - 60 * redness[i]) , int(140 - 60 * redness[i]))
        ImageDraw.Draw(image).ellipse((size // 4, size // 6, 3 * size // 4, 5 * size // 6), fill=face)
        image.save(folder / "images" / f"{i + 1}.jpg", quality=90)
    # The stimulus's actual mean luminance (after drawing and JPEG) drives the planted attributes.
    luminance = np.array([np.asarray(Image.open(folder / "images" / f"{i + 1}.jpg").convert("L"), float).mean() / 255
                          for i in range(n)])
    means = rng.uniform(20, 80, (n, len(attributes)))
    for name in BRIGHTNESS_DRIVEN:
        means[:, attributes.index(name)] = 10 + 80 * luminance + rng.normal(0, 1.0, n)
    for name in REDNESS_DRIVEN:
        means[:, attributes.index(name)] = 90 - 80 * redness + rng.normal(0, 1.0, n)
    with open(folder / "attribute_means.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["stimulus", *attributes])
        for i in range(n):
            writer.writerow([str(i + 1), *(f"{v:.6f}" for v in means[i])])
    return {"stimuli": [str(i + 1) for i in range(n)], "luminance": luminance.tolist(), "redness": redness.tolist(),
            "brightness_driven": list(BRIGHTNESS_DRIVEN), "redness_driven": list(REDNESS_DRIVEN)}
