"""Deciding whether an image member is usable, without paying for a full-resolution decode.

LAION images are JPEGs of up to a few megapixels. A header parse alone misses truncated and corrupt entropy
data, which is what breaks a GPU batch hours later, so by default the JPEG is decoded through libjpeg's DCT
scaling (``Image.draft``): every byte of the scan is still read and checked, at a fraction of the cost.
The pixel limit is checked from the header before any decode, so a decompression bomb costs nothing.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from typing import Literal

from PIL import Image

# PIL's own default; bigger images are refused before decoding.
DEFAULT_MAX_IMAGE_PIXELS = 89_478_485

VerifyMode = Literal["decode", "header"]


@dataclass(frozen=True)
class ImageCheck:
    ok: bool
    width: int | None = None
    height: int | None = None
    format: str | None = None
    error_kind: str | None = None
    error: str | None = None


def check_image(
    data: bytes, *, max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS, verify: VerifyMode = "decode"
) -> ImageCheck:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        return ImageCheck(ok=False, error_kind="decompression_bomb", error=f"decompression bomb: {exc}")
    except Exception as exc:  # PIL raises a zoo of types for garbage input
        return ImageCheck(
            ok=False, error_kind="corrupt_image", error=f"not a readable image: {type(exc).__name__}: {exc}"
        )

    width, height = image.size
    fmt = image.format
    if width * height > max_pixels:
        return ImageCheck(
            ok=False,
            width=width,
            height=height,
            format=fmt,
            error_kind="decompression_bomb",
            error=f"decompression bomb: header declares {width}x{height} = {width * height:,} pixels "
            f"(limit {max_pixels:,})",
        )
    if verify == "header":
        return ImageCheck(ok=True, width=width, height=height, format=fmt)

    try:
        if fmt == "JPEG":
            image.draft("RGB", (max(1, width // 8), max(1, height // 8)))
        image.load()
    except OSError as exc:
        kind = "truncated_image" if "truncated" in str(exc).lower() else "corrupt_image"
        return ImageCheck(
            ok=False, width=width, height=height, format=fmt, error_kind=kind, error=f"{kind.replace('_', ' ')}: {exc}"
        )
    except Exception as exc:
        return ImageCheck(
            ok=False,
            width=width,
            height=height,
            format=fmt,
            error_kind="corrupt_image",
            error=f"corrupt image: {type(exc).__name__}: {exc}",
        )
    return ImageCheck(ok=True, width=width, height=height, format=fmt)
