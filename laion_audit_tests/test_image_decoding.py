"""Image decoding for ingest and for the models: EXIF orientation, transparency, odd modes, the pixel limit.

Every image here is made by hand, so the expected result follows from the EXIF specification (where row 0 and
column 0 of the stored pixels are shown), not from the code under test.
"""

import io
import struct
import zlib

import numpy as np
import pyarrow as pa
import pytest
from PIL import Image, ImageOps

from laion_audit.annotation.crops import PersonBox, crop, iter_person_images
from laion_audit.shards.image_check import (
    BACKGROUND,
    DEFAULT_MAX_IMAGE_PIXELS,
    ImageTooLarge,
    check_image,
    decode_for_models,
)
from laion_audit.shards.images import ORIENTATION_INFO, iter_images
from laion_audit.shards.reader import ReaderOptions, read_samples
from laion_audit.shards.sources import ShardSource

from .shard_fixtures import good_sample, write_tar

RED, GREEN, BLUE = (230, 20, 20), (20, 200, 20), (20, 20, 230)
HIDDEN = (255, 0, 255)  # magenta: what an encoder left under fully transparent pixels
W, H, BLOCK = 96, 64, 24  # stored size, not square, so a quarter turn shows in the size

# EXIF orientation -> where the stored image's top-left and top-right corners are displayed.
# From the EXIF tag's definition ("row 0 is the visual top/bottom/left/right, column 0 the visual ..."):
#   1 top/left  2 top/right  3 bottom/right  4 bottom/left  5 left/top  6 right/top  7 right/bottom  8 left/bottom
SHOWN_AT = {
    1: ("TL", "TR"),
    2: ("TR", "TL"),
    3: ("BR", "BL"),
    4: ("BL", "BR"),
    5: ("TL", "BL"),
    6: ("TR", "BR"),
    7: ("BR", "TR"),
    8: ("BL", "TL"),
}


@pytest.fixture(autouse=True)
def _restore_pils_limit(monkeypatch):
    """A test with a limit above PIL's raises PIL's process-wide limit (on purpose, only ever upwards); put it
    back afterwards so other test modules see PIL's default."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", Image.MAX_IMAGE_PIXELS)


def stored_image() -> Image.Image:
    """Blue, with a red block in the stored top-left corner and a green one in the stored top-right corner."""
    image = Image.new("RGB", (W, H), BLUE)
    image.paste(RED, (0, 0, BLOCK, BLOCK))
    image.paste(GREEN, (W - BLOCK, 0, W, BLOCK))
    return image


def jpeg_with_orientation(orientation: int | None) -> bytes:
    exif = Image.Exif()
    if orientation is not None:
        exif[0x0112] = orientation
    buffer = io.BytesIO()
    stored_image().save(buffer, "JPEG", quality=95, exif=exif)
    return buffer.getvalue()


def corner_colour(image: Image.Image, corner: str) -> tuple[int, int, int]:
    """The colour at the centre of the BLOCK-sized square in a displayed corner."""
    x = BLOCK // 2 if corner[1] == "L" else image.width - BLOCK // 2
    y = BLOCK // 2 if corner[0] == "T" else image.height - BLOCK // 2
    return image.getpixel((x, y))


def close(colour, expected, tolerance=12) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(colour, expected, strict=True))


# --------------------------------------------------------------------------------------------- orientation


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_as_a_viewer_shows_it(orientation):
    data = jpeg_with_orientation(orientation)
    image, applied = decode_for_models(data)
    assert applied == orientation
    assert image.mode == "RGB"
    assert image.size == ((H, W) if orientation >= 5 else (W, H))
    red_at, green_at = SHOWN_AT[orientation]
    assert close(corner_colour(image, red_at), RED)
    assert close(corner_colour(image, green_at), GREEN)
    for corner in {"TL", "TR", "BL", "BR"} - {red_at, green_at}:
        assert close(corner_colour(image, corner), BLUE)
    # The same pixels as PIL's own exif_transpose.
    with Image.open(io.BytesIO(data)) as reference:
        expected = ImageOps.exif_transpose(reference).convert("RGB")
    assert np.array_equal(np.asarray(image), np.asarray(expected))


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("verify", ["decode", "header"])
def test_check_reports_the_displayed_size_and_the_orientation(orientation, verify):
    data = jpeg_with_orientation(orientation)
    check = check_image(data, verify=verify)
    image, _ = decode_for_models(data)
    assert check.ok and check.format == "JPEG"
    assert check.orientation == orientation
    assert (check.width, check.height) == image.size


@pytest.mark.parametrize("orientation", [None, 0, 9, 65535])
def test_missing_or_invalid_orientation_is_upright(orientation):
    data = jpeg_with_orientation(orientation)
    image, applied = decode_for_models(data)
    assert applied == 1 and image.size == (W, H)
    assert close(corner_colour(image, "TL"), RED)
    check = check_image(data)
    assert check.orientation == 1 and (check.width, check.height) == (W, H)


def test_a_decoded_image_cannot_be_turned_twice():
    """Detectors and processors (ultralytics, transformers) apply exif_transpose to any PIL image they get."""
    image, _ = decode_for_models(jpeg_with_orientation(6))
    assert 0x0112 not in image.getexif()
    again = ImageOps.exif_transpose(image)
    assert again.size == image.size and np.array_equal(np.asarray(again), np.asarray(image))


def test_png_and_webp_orientation():
    for fmt in ("PNG", "WEBP"):
        exif = Image.Exif()
        exif[0x0112] = 8
        buffer = io.BytesIO()
        stored_image().save(buffer, fmt, exif=exif, **({"lossless": True} if fmt == "WEBP" else {}))
        image, orientation = decode_for_models(buffer.getvalue())
        assert orientation == 8 and image.size == (H, W)
        assert close(corner_colour(image, "BL"), RED) and close(corner_colour(image, "TL"), GREEN)
        check = check_image(buffer.getvalue(), verify="header")
        assert (check.width, check.height, check.orientation) == (H, W, 8)


# -------------------------------------------------------------------------------------------- transparency


def _encode(image: Image.Image, fmt: str = "PNG", **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def _hidden_rgba() -> Image.Image:
    """Left half fully transparent with magenta under it, a partly transparent strip, the rest opaque blue."""
    pixels = np.zeros((40, 60, 4), np.uint8)
    pixels[:, :30] = HIDDEN + (0,)
    pixels[:, 30:40] = HIDDEN + (128,)
    pixels[:, 40:] = BLUE + (255,)
    return Image.fromarray(pixels, "RGBA")


def _assert_no_hidden_colour(image: Image.Image) -> None:
    assert image.mode == "RGB"
    pixels = np.asarray(image).reshape(-1, 3)
    assert not (pixels == HIDDEN).all(axis=1).any()


@pytest.mark.parametrize("fmt", ["PNG", "WEBP"])
def test_transparent_pixels_show_the_background_not_the_hidden_colour(fmt):
    params = {"lossless": True, "exact": True} if fmt == "WEBP" else {}
    data = _encode(_hidden_rgba(), fmt, **params)
    with Image.open(io.BytesIO(data)) as raw:  # the hidden colour really is in the file
        assert raw.convert("RGB").getpixel((5, 5)) == HIDDEN
    image, _ = decode_for_models(data)
    _assert_no_hidden_colour(image)
    assert image.getpixel((5, 5)) == BACKGROUND
    assert image.getpixel((50, 5)) == BLUE
    # Half transparent: half way between the hidden colour and the background, as a viewer blends it.
    assert close(image.getpixel((35, 5)), tuple((h + b) // 2 for h, b in zip(HIDDEN, BACKGROUND)), 2)
    check = check_image(data)
    assert check.ok and (check.width, check.height) == image.size


def test_grey_alpha_palette_and_colour_key_transparency():
    la = Image.new("LA", (20, 20), (200, 255))
    la.paste((7, 0), (0, 0, 10, 20))  # transparent dark grey
    palette = Image.new("P", (20, 20), 1)
    palette.putpalette(list(HIDDEN) + list(BLUE) + [0] * 762)
    palette.paste(0, (0, 0, 10, 20))
    rgb = Image.new("RGB", (20, 20), BLUE)
    rgb.paste(HIDDEN, (0, 0, 10, 20))
    cases = {
        "LA": _encode(la),
        "P": _encode(palette, transparency=0),
        "GIF": _encode(palette, "GIF", transparency=0),
        "RGB colour key": _encode(rgb, transparency=HIDDEN),
    }
    for name, data in cases.items():
        image, _ = decode_for_models(data)
        _assert_no_hidden_colour(image)
        assert image.getpixel((2, 2)) == BACKGROUND, name
        assert image.getpixel((15, 2)) != BACKGROUND, name
        assert check_image(data).ok, name


# ------------------------------------------------------------------------------------------ other modes


def test_sixteen_bit_grey_is_scaled_not_clipped():
    ramp = (np.arange(256, dtype=np.uint32) * 257).astype(np.uint16)[None, :].repeat(4, axis=0)
    data = _encode(Image.fromarray(ramp))
    with Image.open(io.BytesIO(data)) as raw:
        assert raw.mode.startswith("I")
    image, _ = decode_for_models(data)
    assert image.mode == "RGB"
    values = np.asarray(image)[0, :, 0].astype(int)
    assert np.abs(values - np.arange(256)).max() <= 1  # a plain convert("RGB") makes everything above 255 white


def test_cmyk_and_bilevel_become_rgb():
    cmyk = Image.new("CMYK", (16, 16), (0, 255, 255, 0))  # red
    image, _ = decode_for_models(_encode(cmyk, "JPEG", quality=95))
    assert image.mode == "RGB" and close(image.getpixel((8, 8)), (255, 0, 0), 16)
    bilevel, _ = decode_for_models(_encode(Image.new("1", (16, 16), 1)))
    assert bilevel.mode == "RGB" and bilevel.getpixel((0, 0)) == (255, 255, 255)


# ------------------------------------------------------------------------------------------ pixel limit


def _big_png(width: int, height: int) -> bytes:
    """A bilevel PNG whose header declares width x height (the data is a few kB of zlib-compressed zeros)."""

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    raw = zlib.compress(b"\x00" * ((width + 7) // 8 + 1) * height, 9)
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")


def test_a_limit_above_pils_own_allows_the_image():
    big = _big_png(15000, 15000)  # 225M pixels: beyond twice PIL's default, where PIL itself refuses to open
    assert 15000 * 15000 > 2 * DEFAULT_MAX_IMAGE_PIXELS
    check = check_image(big, max_pixels=300_000_000, verify="header")
    assert check.ok, check.error
    assert (check.width, check.height, check.format) == (15000, 15000, "PNG")
    assert check_image(big, max_pixels=15000 * 15000, verify="header").ok


def test_a_limit_below_pils_own_rejects_the_image():
    default = check_image(_big_png(15000, 15000), verify="header")
    assert not default.ok and default.error_kind == "decompression_bomb" and "225000000 pixels" in default.error
    just_below = check_image(_big_png(15000, 15000), max_pixels=15000 * 15000 - 1, verify="header")
    assert just_below.error_kind == "decompression_bomb"
    small = jpeg_with_orientation(6)  # 96x64 stored, 64x96 shown: 6144 pixels either way
    for verify in ("decode", "header"):
        refused = check_image(small, max_pixels=6000, verify=verify)
        assert refused.error_kind == "decompression_bomb" and (refused.width, refused.height) == (H, W)
        assert check_image(small, max_pixels=6144, verify=verify).ok
    with pytest.raises(ImageTooLarge):
        decode_for_models(small, max_pixels=6000)
    assert decode_for_models(small, max_pixels=6144)[0].size == (H, W)


def test_the_default_setting_leaves_pils_own_protection_alone():
    """Other code in the process (and PIL's own plugins) still refuse a bomb with the default setting."""
    before = Image.MAX_IMAGE_PIXELS
    big = _big_png(15000, 15000)
    assert check_image(big).error_kind == "decompression_bomb"
    check_image(jpeg_with_orientation(6))
    decode_for_models(jpeg_with_orientation(6))
    assert Image.MAX_IMAGE_PIXELS == before == DEFAULT_MAX_IMAGE_PIXELS
    with pytest.raises(Image.DecompressionBombError):
        Image.open(io.BytesIO(big))


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_full_decodes_above_pils_limit(monkeypatch, fmt):
    """Decoding, for the check and for the models, with PIL's limit far below the image (a few kB instead of
    the hundreds of MB a real image beyond twice PIL's default would take)."""
    exif = Image.Exif()
    exif[0x0112] = 6
    data = _encode(stored_image(), fmt, exif=exif, **({"lossless": True} if fmt == "WEBP" else {}))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # W * H = 6144 > twice PIL's limit
    with pytest.raises(Image.DecompressionBombError):
        Image.open(io.BytesIO(data))
    check = check_image(data, max_pixels=W * H)
    assert check.ok, check.error
    assert (check.width, check.height, check.orientation) == (H, W, 6)
    refused = check_image(data, max_pixels=W * H - 1)
    assert refused.error_kind == "decompression_bomb" and "6144 pixels" in refused.error

    # The models' path does not know the run's limit: whatever ingest accepted is decoded, PIL's limit aside.
    # (Not WebP: its plugin checks the canvas against PIL's global before the size can be read; see
    # image_check's note on PIL's limit. The check above raised the global, so it would pass here anyway.)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    if fmt == "WEBP":
        return
    image, orientation = decode_for_models(data)
    assert image.size == (H, W) and orientation == 6 and close(corner_colour(image, "TR"), RED)
    with pytest.raises(ImageTooLarge):
        decode_for_models(data, max_pixels=W * H - 1)
    # A person box as large as the image is still cut (PIL checks crop sizes against its own limit too).
    assert crop(image, PersonBox("k", 0, (0, 0, H, W))).size == (H, W)


def test_per_call_limits_do_not_leak_between_calls():
    """The limit is the caller's, not process state: a generous call does not loosen a strict one after it."""
    big = _big_png(12000, 10000)
    assert check_image(big, max_pixels=200_000_000, verify="header").ok
    assert check_image(big, max_pixels=100_000_000, verify="header").error_kind == "decompression_bomb"
    assert check_image(big, max_pixels=200_000_000, verify="header").ok


# ------------------------------------------------------------------ the same pixels in every step of a shard


def test_samples_boxes_and_crops_agree_on_a_rotated_photo(tmp_path):
    sample = good_sample("000000000")
    sample["jpg"] = jpeg_with_orientation(6)
    path = write_tar(tmp_path / "00000.tar", [sample, good_sample("000000001")])
    source = ShardSource("00000", "webdataset", str(path))
    rows = {r["key"]: r for r in pa.concat_tables(list(read_samples(source, ReaderOptions()))).to_pylist()}
    assert (rows["000000000"]["width"], rows["000000000"]["height"]) == (H, W)
    assert (rows["000000001"]["width"], rows["000000001"]["height"]) == (64, 48)

    images = dict(iter_images(source, rows))
    for key, image in images.items():
        assert image.size == (rows[key]["width"], rows[key]["height"])
    assert images["000000000"].info[ORIENTATION_INFO] == 6 and images["000000001"].info[ORIENTATION_INFO] == 1

    # Orientation 6 shows the stored top-left (red) at the top right: a box there, in the coordinates the
    # detector saw, cuts red.
    box = PersonBox("000000000", 0, (H - BLOCK + 4, 4, H - 4, BLOCK - 4))
    [(got, image)] = list(iter_person_images(source, [box]))
    piece = crop(image, got)
    assert piece.size == (BLOCK - 8, BLOCK - 8)
    assert close(tuple(np.asarray(piece).reshape(-1, 3).mean(axis=0).round().astype(int)), RED)
