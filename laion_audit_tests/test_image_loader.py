"""The GPU input pipeline: shard images decoded in DataLoader workers, in tar order, every sample accounted for,
and the boxes it yields the same as ultralytics' own predict on the same decoded images."""

import io

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from PIL import Image

from laion_audit.annotation.crops import ImageDecodeError, PersonBox, iter_person_images, upright_pixels
from laion_audit.annotation.detection import detect_shard
from laion_audit.annotation.image_loader import load_batches
from laion_audit.annotation.throughput import LoaderStats
from laion_audit.models.registry import ModelRegistry
from laion_audit.shards.images import iter_images
from laion_audit.shards.reader import read_samples
from laion_audit.shards.sources import ShardSource

from .shard_fixtures import good_sample, write_tar

# (width, height, colour) per sample: sizes differ so a misplaced image shows.
IMAGES = [(40 + 7 * i, 30 + 5 * i, (20 * i, 255 - 20 * i, 100)) for i in range(11)]


def _png(width, height, colour) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(buffer, format="PNG")  # lossless: colours compare exactly
    return buffer.getvalue()


def _shard(tmp_path, name="00000.tar", *, broken=(), without_image=()):
    samples = []
    for i, (width, height, colour) in enumerate(IMAGES):
        key = f"{i:09d}"
        sample = good_sample(key)
        del sample["jpg"]
        if key in broken:
            sample["png"] = b"\x89PNG\r\n\x1a\n this is not a png"
        elif key not in without_image:
            sample["png"] = _png(width, height, colour)
        samples.append(sample)
    return ShardSource("00000", "webdataset", str(write_tar(tmp_path / name, samples)))


@pytest.mark.parametrize("workers", [0, 2])
def test_batches_come_in_tar_order_with_their_own_pixels(tmp_path, workers):
    source = _shard(tmp_path)
    wanted = [f"{i:09d}" for i in range(11) if i not in (3, 8)]
    stats = LoaderStats()
    batches = list(load_batches(source, reversed(wanted), upright_pixels, batch_size=2, workers=workers,
                                stats=stats))

    assert [b.keys for b in batches] == [wanted[i:i + 2] for i in range(0, len(wanted), 2)]
    for batch in batches:
        assert batch.ready == batch.keys and not batch.failed and not batch.missing
        for key, (pixels, orientation), size in zip(batch.ready, batch.values, batch.sizes, strict=True):
            width, height, colour = IMAGES[int(key)]
            assert size == (width, height) and pixels.shape == (height, width, 3) and orientation == 1
            assert (pixels.numpy() == np.array(colour, dtype=np.uint8)).all()
    assert (stats.images, stats.batches) == (9, 5)


def test_undecodable_and_imageless_samples_are_reported_not_dropped(tmp_path):
    source = _shard(tmp_path, broken={"000000004"}, without_image={"000000007"})
    wanted = [f"{i:09d}" for i in range(11)]
    batches = list(load_batches(source, wanted, upright_pixels, batch_size=4, workers=2))

    assert [key for b in batches for key in b.keys] == wanted
    failed = {k: v for b in batches for k, v in b.failed.items()}
    missing = [k for b in batches for k in b.missing]
    ready = [k for b in batches for k in b.ready]
    assert list(failed) == ["000000004"] and failed["000000004"].startswith("decode failed: ")
    assert missing == ["000000007"]
    assert sorted(ready + list(failed) + missing) == wanted


def test_person_images_from_workers_are_the_boxes_own_images_in_tar_order(tmp_path):
    source = _shard(tmp_path, broken={"000000009"})
    boxes = [PersonBox(f"{i:09d}", box_id, (0, 0, 10, 10)) for i in (6, 1, 4) for box_id in (0, 1)]

    got = list(iter_person_images(source, boxes, workers=2, batch_size=1))

    assert [(box.key, box.box_id) for box, _ in got] == [(f"{i:09d}", b) for i in (1, 4, 6) for b in (0, 1)]
    for box, image in got:
        width, height, colour = IMAGES[int(box.key)]
        assert image.size == (width, height) and image.getpixel((0, 0)) == colour
    with pytest.raises(ImageDecodeError, match="sample 000000009: decode failed"):
        list(iter_person_images(source, [PersonBox("000000009", 0, (0, 0, 10, 10))], workers=2))


@pytest.fixture(scope="module")
def detector(tiny_models):
    from laion_audit.models.person_detector import PersonDetector

    model = ModelRegistry("tiny", tiny_models).resolve("detector")
    return PersonDetector(model.path, name=model.name, fingerprint=model.fingerprint, max_det=4)


def _photo_shard(tmp_path):
    from skimage import data

    astronaut = Image.fromarray(data.astronaut())
    samples = []
    for i, size in enumerate([(320, 240), (200, 300), (256, 256), (300, 180), (180, 300), (400, 220)]):
        canvas = Image.new("RGB", size, (90, 120, 90))
        canvas.paste(astronaut.resize((min(size) * 3 // 4,) * 2), (size[0] // 8, size[1] // 8))
        buffer = io.BytesIO()
        canvas.save(buffer, format="JPEG", quality=92)
        sample = good_sample(f"{i:09d}")
        sample["jpg"] = buffer.getvalue()
        samples.append(sample)
    return samples


def test_pipeline_boxes_are_ultralytics_predict_on_the_same_images(tmp_path, detector):
    source = ShardSource("00000", "webdataset", str(write_tar(tmp_path / "00000.tar", _photo_shard(tmp_path))))
    samples = pa.concat_tables(list(read_samples(source)))
    images = dict(iter_images(source, samples.column("key").to_pylist()))
    keys = list(images)
    # ultralytics' own preprocessing on PIL images, in batches of mixed shapes as the pipeline's batches are.
    expected = {}
    for start in range(0, len(keys), 3):
        batch = keys[start:start + 3]
        for key, found in zip(batch, detector.detect([images[k] for k in batch]), strict=True):
            expected[key] = found
    assert any(expected.values())

    table = detect_shard(source, samples, detector, batch_size=3, workers=1)
    for key in keys:
        rows = table.filter(pc.equal(table["key"], key)).to_pylist()
        want = expected[key]
        if not want:
            assert len(rows) == 1 and rows[0]["box_id"] is None and rows[0]["status"] == "ok"
            continue
        assert [r["box_id"] for r in rows] == list(range(len(want)))
        for row, box in zip(rows, want, strict=True):
            got = (row["x1"], row["y1"], row["x2"], row["y2"], row["confidence"])
            assert got == pytest.approx((box.x1, box.y1, box.x2, box.y2, box.confidence), abs=1e-3)
            assert (row["image_width"], row["image_height"]) == images[key].size


def test_an_image_that_no_longer_decodes_gets_an_error_row(tmp_path, detector):
    """The samples table was made from a good shard; the file read for detection has one image broken since."""
    good = _shard(tmp_path, "good.tar")
    samples = pa.concat_tables(list(read_samples(good)))
    changed = _shard(tmp_path, "changed.tar", broken={"000000005"})
    stats = LoaderStats()

    table = detect_shard(changed, samples, detector, batch_size=4, workers=2, stats=stats)

    keys = samples.column("key").to_pylist()
    assert list(dict.fromkeys(table.column("key").to_pylist())) == keys
    by_status = {r["key"]: (r["status"], r["error"]) for r in table.to_pylist()}
    assert by_status["000000005"][0] == "error" and by_status["000000005"][1].startswith("decode failed: ")
    assert all(status == "ok" for key, (status, _) in by_status.items() if key != "000000005")
    assert (stats.images, stats.batches) == (10, 3)
    assert stats.input_wait_s + stats.model_s <= stats.wall_s
