"""Helpers for the property tests (hypothesis) of the three readers of untrusted input: the manifest
loader (unit/test_manifest.py), the file-list reader (unit/test_filelist.py) and verify's archive
reader (unit/test_archive_reader.py). Random and mutated inputs must give a clean error (UserError,
or a `problem` for the archive reader) or a correct result, never another exception. Those tests
are marked `fuzz`; the profiles are set in conftest.py.

Short in CI (profile "ci": 40 examples a test, a few seconds). For a longer run:

    HYPOTHESIS_PROFILE=long python -m pytest -m fuzz      # 2,000 examples per test
    HYPOTHESIS_PROFILE=long HYPOTHESIS_EXAMPLES=20000 python -m pytest -m fuzz
"""

from __future__ import annotations

from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context, event as _hypothesis_event


WNIDS = ["n01440764", "n02102040", "n02979186"]


SAMPLE_CSV = ("path,noisy_labels_0,is_valid\n"
              f"train/{WNIDS[0]}/{WNIDS[0]}_1.JPEG,{WNIDS[0]},False\n"
              f"train/{WNIDS[1]}/{WNIDS[1]}_2.JPEG,{WNIDS[1]},False\n"
              f"val/{WNIDS[2]}/ILSVRC2012_val_00000003.JPEG,{WNIDS[2]},True\n")


def event(what: str) -> None:
    """Count outcomes (shown by --hypothesis-show-statistics): how often inputs still parse."""
    if currently_in_test_context():
        _hypothesis_event(what)


@st.composite
def mutated(draw, base: bytes, alphabet=None):
    """`base` with a few random edits: cut, insert, overwrite, duplicate or drop a line, truncate."""
    data = bytearray(base)
    tokens = st.binary(max_size=12) if alphabet is None else st.text(alphabet, max_size=12).map(str.encode)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["cut", "insert", "overwrite", "dup_line", "drop_line", "truncate"]))
        pos = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == "cut":
            del data[pos:pos + draw(st.integers(1, 20))]
        elif op == "insert":
            data[pos:pos] = draw(tokens)
        elif op == "overwrite":
            chunk = draw(tokens)
            data[pos:pos + len(chunk)] = chunk
        elif op in ("dup_line", "drop_line"):
            lines = bytes(data).split(b"\n")
            i = draw(st.integers(0, len(lines) - 1))
            lines[i:i + 1] = [lines[i]] * (2 if op == "dup_line" else 0)
            data = bytearray(b"\n".join(lines))
        else:
            del data[pos:]
    return bytes(data)
