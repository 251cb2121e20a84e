"""The tar-header scanner (sources/tarscan.py): the members of a tar found by reading headers only,
at the offsets tarfile gives, and a truncated or oversized member refused by name."""

from __future__ import annotations

import io
import tarfile

import pytest

from imagenette_build.errors import DataError
from imagenette_build.sources import tarscan


def _tar_bytes(fmt, members):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
        for name, data in members:
            if data is None:
                info = tarfile.TarInfo(name)
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.mark.parametrize("fmt", [tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
def test_scanner_agrees_with_tarfile(fmt, tmp_path):
    long_dir = "d" * 90 + "/" + "e" * 60  # > 100 characters: prefix field, GNU long name or pax path
    members = [("a.JPEG", b"x" * 700), ("dir", None), (f"{long_dir}/b.JPEG", b"y" * 512),
               ("empty.JPEG", b""), ("c.JPEG", b"z" * 1)]
    if fmt == tarfile.PAX_FORMAT:
        members.append(("ünïcödé_" + "f" * 120 + ".JPEG", b"w" * 3))
    data = _tar_bytes(fmt, members)
    path = tmp_path / "t.tar"
    path.write_bytes(b"PREFIX" * 100 + data)  # a tar inside a bigger file, as a class tar is
    start = 600
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        expected = [(t.name, start + t.offset_data, t.size) for t in tar if t.isfile()]
    with open(path, "rb", buffering=0) as f:
        got = [(m.name, m.offset, m.size) for m in tarscan.scan_members(f, "t.tar", start, start + len(data))]
    assert got == expected
    with open(path, "rb") as f:  # the bytes at those offsets are the members
        for (name, offset, size), (_, want) in zip(got, [m for m in members if m[1] is not None]):
            f.seek(offset)
            assert f.read(size) == want
    streamed = list(tarscan.stream_members(io.BytesIO(data), "t.tar", lambda n: not n.startswith("c")))
    assert [(n, d) for n, d in streamed] == [(n, d) for n, d in members if d is not None and not n.startswith("c")]


def test_truncated_headers_and_members_are_errors(tmp_path):
    data = _tar_bytes(tarfile.GNU_FORMAT, [("a.JPEG", b"a" * 1000), ("b.JPEG", b"b" * 1000)])
    path = tmp_path / "t.tar"
    for cut, needle in ((1536 + 700, "b.JPEG needs 1000 bytes"), (1536 + 100, "inside a header")):
        path.write_bytes(data[:cut])
        with open(path, "rb", buffering=0) as f, pytest.raises(DataError, match=f"t.tar: truncated.*{needle}"):
            list(tarscan.scan_members(f, "t.tar"))
        with pytest.raises(DataError, match="t.tar: truncated"):
            list(tarscan.stream_members(io.BytesIO(data[:cut]), "t.tar", lambda n: True))
    path.write_bytes(b"not a tar file at all" * 100)
    with open(path, "rb", buffering=0) as f, pytest.raises(DataError, match="not a tar file or corrupt"):
        list(tarscan.scan_members(f, "t.tar"))


def test_a_compressed_shard_member_declaring_more_than_a_source_image_is_refused_before_it_is_read():
    """A Hugging Face shard is read as a stream and each wanted member held whole: a member of
    300 MB of zeros (300 kB compressed) was read into memory. Refused at its header now."""
    from imagenette_build.errors import DataError
    from imagenette_build.sources.tarscan import stream_members

    info = tarfile.TarInfo("n01440764_1_n01440764.JPEG")
    info.size = 300 << 20
    stream = io.BytesIO(info.tobuf(tarfile.GNU_FORMAT))  # only the header: nothing is read past it
    with pytest.raises(DataError, match="is 314,572,800 bytes, more than a source image may have"):
        list(stream_members(stream, "train_images_0.tar.gz", lambda name: True))
