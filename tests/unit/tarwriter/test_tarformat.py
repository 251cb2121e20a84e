"""Tar headers (tarwriter/tarformat.py): one template, byte for byte what tarfile makes."""

from __future__ import annotations

import io
import tarfile

from hypothesis import given, settings
from hypothesis import strategies as st


@settings(max_examples=300, deadline=None)
@given(name=st.text(st.characters(min_codepoint=0, max_codepoint=127), min_size=1, max_size=110),
       size=st.one_of(st.integers(0, 10**6), st.integers(8**11 - 3, 8**11 + 3)),
       mtime=st.one_of(st.integers(0, 2**31), st.integers(8**11 - 3, 8**11 + 3)), is_dir=st.booleans())
def test_tar_header_is_what_tarfile_makes(name, size, mtime, is_dir):
    """The filled-in ustar template and tarfile agree byte for byte, and past the template's limits
    (names over 100 bytes, sizes of 8 GiB, an mtime past 2242) tarfile's own pax header is used."""
    from imagenette_build.tarwriter.tarformat import _tarfile_header, tar_header

    full = name + "/" if is_dir and not name.endswith("/") else name
    assert tar_header(name, size, mtime, is_dir) == _tarfile_header(full, size, mtime, is_dir)


def test_tar_header_non_ascii_name_uses_pax():
    from imagenette_build.tarwriter.tarformat import tar_header

    header = tar_header("x/café.JPEG", 10, 0)
    assert len(header) > 512  # a pax extended header before the ustar one
    with tarfile.open(fileobj=io.BytesIO(header + b"0" * 10 + bytes(502) + bytes(1024))) as tar:
        assert tar.getnames() == ["x/café.JPEG"]
