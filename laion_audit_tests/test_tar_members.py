"""The reader's own tar walk against the references it must agree with.

The reader parses plain tar headers itself and copies webdataset's naming rules so that it neither pays for
tarfile's general parser on every header nor imports webdataset (and through it torch). These tests hold it to
the originals: every header against ``tarfile.TarInfo.frombuf``, and the members of whole archives (every tar
format, long names, links, directories, webdataset metadata names, gzip) against webdataset's own iterator.
"""

from __future__ import annotations

import io
import random
import tarfile

import pytest
from webdataset.tariterators import base_plus_ext as wds_base_plus_ext
from webdataset.tariterators import tar_file_iterator

from laion_audit.shards.reader import ShardReadReport, _plain_header, _tar_members, base_plus_ext, is_webdataset_meta
from laion_audit.shards.sources import ShardSource

_FIELDS = ("name", "mode", "uid", "gid", "size", "mtime", "chksum", "type", "linkname", "uname", "gname",
           "devmajor", "devminor")


def _header(info: tarfile.TarInfo, fmt: int) -> bytes:
    return info.tobuf(fmt, "utf-8", "surrogateescape")[-tarfile.BLOCKSIZE:]


def _variants(rng: random.Random) -> list[bytes]:
    """Headers as writers produce them, and corrupted copies of them."""
    blocks = []
    for i in range(300):
        info = tarfile.TarInfo(rng.choice(["a", "000001.jpg", "dir/x.y.txt", "é.json", "k" * 99, "trailing/"]))
        info.size = rng.choice([0, 1, 511, 512, 21800, 8**11 - 1])
        info.mtime = rng.choice([0, 1_700_000_000])
        info.type = rng.choice([tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE])
        fmt = rng.choice([tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT])
        block = bytearray(_header(info, fmt))
        mutation = i % 6
        if mutation == 1:  # a byte of a numeric field, or of the checksum, changed
            block[rng.choice([100, 110, 125, 140, 150, 330])] = rng.choice(b"0789 \x00x\x80")
        elif mutation == 2:  # a ustar name prefix
            block[345:349] = b"pre\x00"
        elif mutation == 3:  # numbers with spaces instead of zeros, checksum fixed up
            block[124:136] = b"   " + b"%08o" % info.size + b" "
            block[148:156] = b" " * 8
            block[148:156] = b"%06o\x00 " % (sum(block[:148]) + 256 + sum(block[156:]))
        elif mutation == 4:  # a name that is not UTF-8
            block[0:3] = b"\xff\xfeq"
            block[148:156] = b" " * 8
            block[148:156] = b"%06o\x00 " % (sum(block[:148]) + 256 + sum(block[156:]))
        blocks.append(bytes(block))
    blocks += [bytes(512), b"\x00" * 511 + b"1", b""]
    return blocks


def test_plain_headers_parse_as_tarfile_parses_them():
    seen_fast = 0
    for block in _variants(random.Random(7)):
        try:
            expected = tarfile.TarInfo.frombuf(block, "utf-8", "surrogateescape")
        except tarfile.HeaderError:
            expected = None
        fast = _plain_header(tarfile.TarInfo, block, "utf-8", "surrogateescape")
        if fast is None:
            continue  # tarfile's own parser reads it
        seen_fast += 1
        assert expected is not None, block
        assert {f: getattr(fast, f) for f in _FIELDS} == {f: getattr(expected, f) for f in _FIELDS}, block
    assert seen_fast > 50  # the common headers do take the quick path


def _archive(fmt: int, compression: str = "") -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode=f"w:{compression}" if compression else "w", format=fmt) as tar:
        def add(name, data=b"", kind=tarfile.REGTYPE, link=""):
            info = tarfile.TarInfo(name)
            info.type, info.linkname, info.size = kind, link, len(data)
            tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)

        add("__meta__", b"m")
        add("000000000.jpg", b"\xff\xd8jpeg")
        add("000000000.txt", b"a caption")
        add("d", kind=tarfile.DIRTYPE)
        add("000000000.link.jpg", kind=tarfile.SYMTYPE, link="000000000.jpg")
        add("deep/" * 30 + "000000001.json", b"{}")  # beyond 100 bytes: a long name (GNU) or pax/prefix
        add("__skip__/000000002.txt", b"skipped by webdataset's pattern")
        add("x/__kept__/000000006.txt", b"the pattern matches at the start only")
        add("noext", b"not key.ext")
        add("é/000000003.TXT", b"utf-8 name")
        add("000000004.tar.gz", b"two extensions")
        add("000000005.jpg", bytes(range(256)) * 40)
    return out.getvalue()


@pytest.mark.parametrize(
    "fmt,compression",
    [(tarfile.USTAR_FORMAT, ""), (tarfile.GNU_FORMAT, ""), (tarfile.PAX_FORMAT, ""), (tarfile.GNU_FORMAT, "gz")],
)
def test_members_are_those_webdataset_yields(tmp_path, fmt, compression):
    data = _archive(fmt, compression)
    path = tmp_path / "00000.tar"
    path.write_bytes(data)
    expected = [(m["fname"], m["data"]) for m in tar_file_iterator(io.BytesIO(data))]
    expected = [(name, d) for name, d in expected if wds_base_plus_ext(name)[0] is not None]
    report = ShardReadReport()
    got = [(name, d) for name, _, _, d in _tar_members(ShardSource("00000", "webdataset", str(path)), report)]
    assert got == expected
    assert report.truncated is None
    assert report.unrecognized_members == 5  # meta, dir, symlink, __skip__, noext


def test_member_names_split_as_webdataset_splits_them():
    names = ["a.jpg", "a.b.c", "dir/a.b/c.d", "dir.x/y", "noext", ".hidden", "a.", "x/.y", "a\n.jpg", "a.jp\ng",
             "a.jpg\n", "__x__", "__x__/y.z", "y/__x__/z.t", "__meta__.json", "_x_.y", "a/b/"]
    for name in names:
        assert base_plus_ext(name) == wds_base_plus_ext(name), name
        stream = io.BytesIO()
        with tarfile.open(fileobj=stream, mode="w", format=tarfile.PAX_FORMAT) as tar:
            info = tarfile.TarInfo(name)
            info.size = 1
            tar.addfile(info, io.BytesIO(b"x"))
        stream.seek(0)
        kept = [m["fname"] for m in tar_file_iterator(stream)]
        assert is_webdataset_meta(name) == (kept == []) or name.endswith("/"), name
