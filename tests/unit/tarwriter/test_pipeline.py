"""The deflate, hash and write threads (tarwriter/pipeline.py): the stored stream framed here, and
compressed bytes that depend only on the tar's bytes."""

from __future__ import annotations

import gzip
import hashlib

import pytest

from imagenette_build.tarwriter.pipeline import CHUNK


def _payloads(n: int, size: int) -> list[bytes]:
    """Incompressible, like JPEG data, so the compressed stream is as long as the input."""
    return [hashlib.shake_256(str(i).encode()).digest(size) for i in range(n)]


def test_stored_stream_is_full_blocks_cut_per_chunk_and_ends_with_an_empty_final_block(tmp_path):
    """The stored deflate stream is framed here (not by zlib, whose cuts vary by version): every
    block stored, 65,535 bytes but the last of each CHUNK of tar, then an empty block with BFINAL."""
    from imagenette_build.tarwriter.pipeline import Pipeline
    from imagenette_build.tarwriter.tarformat import STORED_BLOCK

    stream = b"".join(_payloads(25, 100_003))  # 2.5 MB: two whole chunks and a part
    path = tmp_path / "s.gz"
    with open(path, "wb") as f:
        pipe = Pipeline(f, stored=True)
        pipe.write(stream)
        pipe.close()
    raw = path.read_bytes()
    pos, blocks, payload = 10, [], bytearray()  # after the 10-byte gzip header
    while True:
        head = raw[pos]
        n, nn = int.from_bytes(raw[pos + 1:pos + 3], "little"), int.from_bytes(raw[pos + 3:pos + 5], "little")
        assert head in (0, 1) and n ^ nn == 0xFFFF  # BTYPE 00, byte-aligned, LEN and NLEN agree
        payload += raw[pos + 5:pos + 5 + n]
        blocks.append(n)
        pos += 5 + n
        if head == 1:
            break
    assert bytes(payload) == stream and len(raw) == pos + 8  # then only crc32 and size
    per_chunk = [STORED_BLOCK] * (CHUNK // STORED_BLOCK) + [CHUNK % STORED_BLOCK]
    rest = len(stream) - 2 * CHUNK
    assert blocks == per_chunk * 2 + [STORED_BLOCK] * (rest // STORED_BLOCK) + [rest % STORED_BLOCK] + [0]
    assert gzip.decompress(raw) == stream


@pytest.mark.parametrize("stored", [False, True])
def test_compressed_bytes_depend_only_on_the_tar_bytes_not_on_how_they_were_written(tmp_path, stored):
    """ISA-L's output depends on where its input is cut: the pipeline cuts the tar stream into fixed
    CHUNK-sized pieces, so the same bytes written in any pieces give the same archive."""
    from imagenette_build.tarwriter.pipeline import Pipeline

    stream = b"".join(_payloads(30, 123_457))  # ~3.7 MB, not a multiple of CHUNK
    outputs = set()
    for cuts in ([len(stream)], [512, 1536, 150_000], [CHUNK - 1], [7, CHUNK + 3, 100_000]):
        path = tmp_path / f"{len(outputs)}.gz"
        with open(path, "wb") as f:
            pipe = Pipeline(f, stored)
            pos, i = 0, 0
            while pos < len(stream):
                n = cuts[i % len(cuts)]
                pipe.write(stream[pos:pos + n])
                pos, i = pos + n, i + 1
            pipe.close()
        raw = path.read_bytes()
        assert gzip.decompress(raw) == stream
        outputs.add(raw)
    assert len(outputs) == 1
