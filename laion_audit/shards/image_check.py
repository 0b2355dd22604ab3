"""Deciding whether an image member is usable, and decoding it the one way every pixel consumer sees it.

Checking (`check_image`, at ingest). LAION images are JPEGs of up to a few megapixels. A header parse alone
misses truncated and corrupt entropy data, which is what breaks a GPU batch hours later, so by default the JPEG
is decoded through libjpeg's DCT scaling (``Image.draft``): every byte of the scan is still read and checked,
at a fraction of the cost. The pixel limit is checked from the header before any decode, so a decompression
bomb costs nothing.

Decoding (`decode_for_models`, for detection, crops, labels and captions). One function, so every step reads
the same pixels in the same coordinates — person boxes are stored in the coordinates of the image as decoded
for detection, and crops, labels and captions must cut the same image:

* EXIF orientation is applied (the transposes of ``PIL.ImageOps.exif_transpose``), so a photo stored sideways
  with orientation 6 is seen upright, as a viewer shows it. The orientation applied is returned, and
  `check_image` reports it with the width and height *after* orientation (5–8 swap them), so the `samples`
  table, the boxes' image size and the decoded image agree.
* Transparency is composited onto `BACKGROUND` (white), never dropped: ``convert("RGB")`` on an RGBA image
  keeps whatever colour the encoder left under fully transparent pixels, which nobody viewing the image ever
  saw and which a model would then detect, label or caption.
* Every other mode (CMYK, 16-bit grey, palette, bilevel, ...) becomes 8-bit RGB.
"""

from __future__ import annotations

import io
import struct
import threading
from dataclasses import dataclass
from typing import Literal

from PIL import ExifTags, Image

# The project's default limit: PIL's own default. The project's setting is the only limit (see below).
DEFAULT_MAX_IMAGE_PIXELS = 89_478_485

# PIL keeps one process-wide limit, ``Image.MAX_IMAGE_PIXELS`` (warn above it, DecompressionBombError above
# twice it), checked by ``Image.open`` and again inside some plugins (WebP canvas, MPO and GIF frames, crop).
# It cannot express the project's per-run ``max_image_pixels``: a setting above it would still be refused by
# PIL, and setting the global per call would race between the reader's worker threads and loosen (or tighten)
# every other caller in the process. So the project's limit is checked here, from the size the header
# declares, before anything is decoded, and PIL's global is handled in two ways that never leak a *stricter*
# or per-call value anywhere:
#
# * images are opened with `_open`, PIL's format identification without ``Image.open``'s global check, so the
#   caller's limit alone decides for JPEG and PNG;
# * for the checks inside plugins (and ``Image.crop``), `_allow_in_pil` raises the global, only ever upwards,
#   to the largest limit a caller in this process asked for (or, decoding for the models, to the size of an
#   image ingest accepted). With the default setting, PIL's own default, it never changes. Code elsewhere in
#   the process keeps PIL's protection at that value, and a run with a smaller limit is still held to its own
#   by its own check. Left uncovered: a WebP or MPO frame beyond twice PIL's global, decoded for the models in
#   a process that never checked with a limit that large, is refused by PIL (an error, not a silent cap).
_PIL_LIMIT_LOCK = threading.Lock()


def _allow_in_pil(pixels: int) -> None:
    """Make PIL's process-wide limit at least ``pixels``; never lowered, so concurrent callers cannot clash."""
    if Image.MAX_IMAGE_PIXELS is None or Image.MAX_IMAGE_PIXELS >= pixels:
        return
    with _PIL_LIMIT_LOCK:
        if Image.MAX_IMAGE_PIXELS is not None and Image.MAX_IMAGE_PIXELS < pixels:
            Image.MAX_IMAGE_PIXELS = pixels


def _open(data: bytes) -> Image.Image:
    """``Image.open(io.BytesIO(data))`` without its process-wide pixel check (the caller checks the size).

    The same identification as ``Image.open``: the common plugins first, then all, each format's ``accept``
    on the first 16 bytes, and the errors that mean "not this format" move on to the next one.
    """
    fp = io.BytesIO(data)
    prefix = data[:16]
    Image.preinit()
    tried: set[str] = set()
    for load in (None, Image.init):
        if load is not None:
            load()
        for fmt in list(Image.ID):
            if fmt in tried:
                continue
            tried.add(fmt)
            factory, accept = Image.OPEN[fmt]
            if accept is not None:
                accepted = accept(prefix)
                if not accepted or isinstance(accepted, str):  # a str is PIL's "recognised, unsupported"
                    continue
            fp.seek(0)
            try:
                return factory(fp, "")
            except (SyntaxError, IndexError, TypeError, struct.error):
                continue
    raise Image.UnidentifiedImageError("cannot identify image file")


# Fully or partly transparent pixels are composited onto white: web pages, browsers and image viewers show
# transparent PNG/WebP images (logos, product cut-outs, stickers) on white, so the models see what the people
# who wrote and read the alt-text saw. A fixed colour also keeps results reproducible.
BACKGROUND = (255, 255, 255)

VerifyMode = Literal["decode", "header"]

# EXIF orientation -> the transpose that shows the image upright; the same table as ImageOps.exif_transpose.
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


class ImageTooLarge(ValueError):
    """The header declares more pixels than the caller's limit; nothing was decoded."""


@dataclass(frozen=True)
class ImageCheck:
    ok: bool
    # Width and height as displayed: after EXIF orientation, i.e. the size `decode_for_models` returns.
    width: int | None = None
    height: int | None = None
    format: str | None = None
    error_kind: str | None = None
    error: str | None = None
    # The EXIF orientation (1-8) that `decode_for_models` applies; 1 when absent or invalid.
    orientation: int | None = None


def exif_orientation(image: Image.Image) -> int:
    """The EXIF orientation (1-8) of an opened, not yet decoded image; 1 when absent, invalid or unreadable.

    Read from what the header carried (EXIF, or XMP ``tiff:Orientation`` as PIL reads it), so that a header-only
    check and a full decode agree: PIL's PNG ``getexif`` would decode the whole image just to look for an eXIf
    chunk after the pixel data; such a chunk is ignored here, by both paths alike.
    """
    try:
        value = Image.Image.getexif(image).get(ExifTags.Base.Orientation, 1)
    except Exception:  # malformed EXIF: viewers ignore it, so do we
        return 1
    return value if isinstance(value, int) and value in range(1, 9) else 1


def oriented_size(size: tuple[int, int], orientation: int) -> tuple[int, int]:
    """(width, height) as displayed: orientations 5-8 turn the image a quarter, swapping the two."""
    width, height = size
    return (height, width) if orientation >= 5 else (width, height)


def _too_large(size: tuple[int, int], max_pixels: int) -> str | None:
    width, height = size
    pixels = width * height
    if pixels > max_pixels:
        return f"header declares {width}x{height} = {pixels} pixels (limit {max_pixels})"
    return None


def to_rgb(image: Image.Image) -> Image.Image:
    """8-bit RGB, transparency composited onto `BACKGROUND` (alpha channel, palette or colour-key)."""
    mode = image.mode
    if mode.startswith("I;16") or mode in ("I", "F"):
        image = _to_8bit_grey(image)
        mode = image.mode
    has_alpha = mode in ("RGBA", "RGBa", "LA", "La", "PA") or "transparency" in image.info
    if not has_alpha:
        return image.convert("RGB")  # a copy even when already RGB: never the file-backed image itself
    rgba = image.convert("RGBA")  # honours a palette's or a colour key's transparency
    background = Image.new("RGBA", rgba.size, BACKGROUND + (255,))
    return Image.alpha_composite(background, rgba).convert("RGB")


def _to_8bit_grey(image: Image.Image) -> Image.Image:
    """16-bit and 32-bit grey scaled to 0-255; a plain ``convert`` clips, turning most of the image white."""
    if image.mode == "F":
        high = image.getextrema()[1]
        scale = 255.0 if high is not None and high <= 1.0 else 1.0
        return image.point(lambda v: v * scale).convert("L")
    if image.mode.startswith("I;16"):
        high = 65535
    else:  # "I": 16-bit data is common (PNG, TIFF); values within 0-255 are left as they are
        high = image.getextrema()[1] or 0
        high = 255 if high <= 255 else 65535 if high <= 65535 else high
    if high == 255:
        return image.convert("L")
    return image.point(lambda v: v * (255.0 / high)).convert("L")


def orient(image: Image.Image, orientation: int) -> Image.Image:
    method = _TRANSPOSE.get(orientation)
    return image if method is None else image.transpose(method)


def decode_for_models(data: bytes, *, max_pixels: int | None = None) -> tuple[Image.Image, int]:
    """(upright 8-bit RGB image, the EXIF orientation applied) — the pixels every model step sees.

    ``max_pixels``: refuse (``ImageTooLarge``) an image whose header declares more pixels, before decoding.
    None trusts the `samples` check made at ingest with the run's configured limit (`iter_images` decodes only
    images it accepted), so an image a setting above PIL's own limit let in is decoded here too.
    """
    if max_pixels is not None:
        _allow_in_pil(max_pixels)
    with _open(data) as image:
        orientation = exif_orientation(image)
        if max_pixels is not None and (problem := _too_large(image.size, max_pixels)):
            raise ImageTooLarge(problem)
        _allow_in_pil(image.width * image.height)  # accepted by the caller's limit or at ingest
        image.load()
        upright = orient(to_rgb(image), orientation)
    # No EXIF, XMP or transparency left behind: the orientation is applied, and a model library that applies
    # exif_transpose itself (ultralytics and transformers do, to any PIL image they are given) must not turn
    # the image a second time, or the boxes would be in other coordinates than the crops cut from them.
    upright.info = {}
    return upright, orientation


def check_image(
    data: bytes, *, max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS, verify: VerifyMode = "decode"
) -> ImageCheck:
    """Whether ``data`` is an image `decode_for_models` can decode within ``max_pixels``, its displayed size,
    format and EXIF orientation."""
    _allow_in_pil(max_pixels)
    try:
        image = _open(data)
    except Image.DecompressionBombError as exc:  # from a plugin that checks a frame or tile size itself
        return ImageCheck(ok=False, error_kind="decompression_bomb", error=f"decompression bomb: {exc}")
    except Exception as exc:  # PIL raises a zoo of types for garbage input
        return ImageCheck(
            ok=False, error_kind="corrupt_image", error=f"not a readable image: {type(exc).__name__}: {exc}"
        )

    with image:
        return _check_opened(image, max_pixels, verify)


def _check_opened(image: Image.Image, max_pixels: int, verify: VerifyMode) -> ImageCheck:
    fmt = image.format
    orientation = exif_orientation(image)
    width, height = oriented_size(image.size, orientation)
    known = {"width": width, "height": height, "format": fmt, "orientation": orientation}
    if problem := _too_large(image.size, max_pixels):
        return ImageCheck(ok=False, **known, error_kind="decompression_bomb", error=f"decompression bomb: {problem}")
    if verify == "header":
        return ImageCheck(ok=True, **known)

    try:
        if fmt in ("JPEG", "MPO"):  # MPO: a JPEG with extra frames (camera previews, stereo pairs)
            image.draft("RGB", (max(1, image.width // 8), max(1, image.height // 8)))
        image.load()
    except Image.DecompressionBombError as exc:
        return ImageCheck(ok=False, **known, error_kind="decompression_bomb", error=f"decompression bomb: {exc}")
    except OSError as exc:
        kind = "truncated_image" if "truncated" in str(exc).lower() else "corrupt_image"
        return ImageCheck(ok=False, **known, error_kind=kind, error=f"{kind.replace('_', ' ')}: {exc}")
    except Exception as exc:
        return ImageCheck(
            ok=False, **known, error_kind="corrupt_image", error=f"corrupt image: {type(exc).__name__}: {exc}"
        )
    try:
        to_rgb(image)  # what decode_for_models does next; a mode PIL cannot turn into RGB fails here, not on a GPU
    except Exception as exc:
        return ImageCheck(
            ok=False,
            **known,
            error_kind="corrupt_image",
            error=f"cannot convert {image.mode} image to RGB: {type(exc).__name__}: {exc}",
        )
    return ImageCheck(ok=True, **known)
