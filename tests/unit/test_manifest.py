"""Manifests (manifest.py): every mistake is a one-line UserError naming the file; random, mutated and
any structured TOML documents load cleanly or fail so; root files are read as they were hashed;
a [[published]] entry takes its size and checksums from the shipped table."""

from __future__ import annotations

from pathlib import Path
from unittest import mock

import pytest
from hypothesis import given
from hypothesis import strategies as st

from imagenette_build import manifest as manifests
from imagenette_build.errors import UserError
from imagenette_build.newdataset import NewManifest

from ..fuzzkit import SAMPLE_CSV, WNIDS, event, mutated


SAMPLE_TOML = f'''name = "fuzz"
description = "a small manifest"
stem = "fuzz"
root_files = ["list.csv"]

[split]
policy = "files"
list = "list.csv"

[[classes]]
wnid = "{WNIDS[0]}"
name = "tench"

[[classes]]
wnid = "{WNIDS[1]}"

[[classes]]
wnid = "{WNIDS[2]}"

[[published]]
archive = "fuzz-160.tgz"
uploaded = "2021-02"
size = 123
md5 = "0123456789abcdef0123456789abcdef"
'''


TOML_ALPHABET = "abcnprstuvwy0123456789_-.=\"'[]{},# \n" + "é\x00"


def _load(workdir: Path, toml: bytes, csv: bytes = SAMPLE_CSV.encode()):
    (workdir / "list.csv").write_bytes(csv)
    path = workdir / "fuzz.toml"
    path.write_bytes(toml)
    try:
        m = manifests.load_path(path)
    except UserError as exc:  # one line, naming the manifest or its list
        assert "\n" not in str(exc) and str(exc).startswith(str(workdir)), str(exc)
        event("UserError")
        return None
    event("loaded")
    return m


def _check_manifest(m) -> None:
    known = set(manifests.imagenet_classes.by_wnid())
    assert m.classes and all(c.wnid in known for c in m.classes)
    assert len({c.wnid for c in m.classes}) == len(m.classes)
    assert manifests.SAFE_NAME_RE.match(m.stem)
    assert m.split.policy in manifests.SPLIT_POLICIES
    if m.split.policy == "files":
        for li in m.listed_images():
            assert li.wnid in m.wnids and li.split in m.split.splits


@pytest.mark.fuzz
def test_sample_manifest_loads(workdir):
    m = _load(workdir, SAMPLE_TOML.encode())
    assert m is not None and m.wnids == tuple(WNIDS) and len(m.listed_images()) == 3


@pytest.mark.fuzz
@given(st.binary(max_size=400))
def test_manifest_random_bytes(workdir, data):
    m = _load(workdir, data)
    if m is not None:
        _check_manifest(m)


@pytest.mark.fuzz
@given(mutated(SAMPLE_TOML.encode(), TOML_ALPHABET))
def test_manifest_mutated(workdir, data):
    m = _load(workdir, data)
    if m is not None:
        _check_manifest(m)


# Structured: any TOML document (a tree of tables, arrays, strings, numbers, booleans), in place
# of what tomllib parsed, reaches the schema checks.
_scalars = st.one_of(st.text(max_size=12), st.integers(-5, 10 ** 12), st.floats(allow_nan=True),
                     st.booleans(), st.sampled_from(WNIDS + ["n0144076", "files", "imagenet", "random",
                                                             "list.csv", "train", "val", "fuzz"]))


_keys = st.sampled_from(sorted(manifests._TOP_KEYS | manifests._SPLIT_KEYS | manifests._CLASS_KEYS
                               | manifests._PUBLISHED_KEYS | manifests._EXTRA_KEYS | manifests._SOURCE_KEYS
                               | {"x"}))


_values = st.recursive(_scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                         st.dictionaries(_keys, inner, max_size=5)), max_leaves=20)


@st.composite
def toml_documents(draw):
    doc = {"name": "fuzz", "stem": "fuzz", "split": {"policy": "files", "list": "list.csv"},
           "classes": [{"wnid": w} for w in WNIDS]}
    for _ in range(draw(st.integers(1, 4))):
        where = draw(st.sampled_from(["top", "split", "class", "new"]))
        key, value = draw(_keys), draw(_values)
        if where == "top":
            doc[key] = value
        elif where == "split" and isinstance(doc.get("split"), dict):
            doc["split"][key] = value
        elif where == "class" and isinstance(doc.get("classes"), list) and doc["classes"]:
            target = doc["classes"][draw(st.integers(0, len(doc["classes"]) - 1))]
            if isinstance(target, dict):
                target[key] = value
        else:
            doc.pop(key, None)
    return doc


@pytest.mark.fuzz
@given(toml_documents())
def test_manifest_any_document_structure(workdir, doc):
    with mock.patch.object(manifests.tomllib, "loads", return_value=doc):
        m = _load(workdir, b"# stands for the document above\n")
    if m is not None:
        _check_manifest(m)


# ------------------------------------------------------------------------------ root files


def test_root_file_changed_after_loading_is_refused(tmp_path):
    toml = tmp_path / "one.toml"
    toml.write_text('name = "one"\nstem = "one"\nroot_files = ["notes.txt"]\n[split]\npolicy = "imagenet"\n'
                    '[[classes]]\nwnid = "n01440764"\n')
    (tmp_path / "notes.txt").write_text("notes\n")
    m = manifests.load(str(toml))
    assert m.read_root_file("notes.txt") == b"notes\n"
    (toml.parent / "notes.txt").write_text("other notes\n")
    with pytest.raises(UserError, match="changed since the manifest"):
        m.read_root_file("notes.txt")


# ------------------------------------------------------------------------------ one-line errors

ONE_CLASS = '[split]\npolicy = "imagenet"\n[[classes]]\nwnid = "n01440764"\n'
NAMED = 'name = "one"\nstem = "one"\n'
EXTRA = ('[[classes]]\nwnid = "n01440764"\n[split]\npolicy = "random"\nval_fraction = 0.3\nseed = 1\n'
         '[[split.extra]]\nname = "unsup"\nfraction = 0.5\n')


@pytest.mark.parametrize("toml,needle", [
    (b'name = "\xff"\n', "not valid TOML"),
    (b"name = \n", "not valid TOML"),
    ('colour = "red"\n' + NAMED + ONE_CLASS, "unknown key 'colour' (known: classes, description, name,"),
    ('name = "one"\n' + ONE_CLASS, "missing key 'stem'"),
    ('name = "one"\nstem = 3\n' + ONE_CLASS, "'stem' must be a str, not int"),
    ('name = "one"\nstem = "../one"\n' + ONE_CLASS, "stem '../one' must be letters, digits"),
    (NAMED + ONE_CLASS + '[[classes]]\nwnid = "n01440764"\n', "[[classes]] #2: duplicate class n01440764"),
    (NAMED + '[split]\npolicy = "alphabetical"\n[[classes]]\nwnid = "n01440764"\n', "unknown policy 'alphabetical'"),
    (NAMED + '[split]\npolicy = "random"\nval_fraction = 0.3\n[[classes]]\nwnid = "n01440764"\n',
     "[split]: missing key 'seed'"),
    (NAMED + '[split]\npolicy = "random"\nval_fraction = 1.5\nseed = 1\n[[classes]]\nwnid = "n01440764"\n',
     "val_fraction must be between 0 and 1, not 1.5"),
    (NAMED + '[split]\npolicy = "random"\nval_fraction = true\nseed = 1\n[[classes]]\nwnid = "n01440764"\n',
     "'val_fraction' must be a int or float, not bool"),
    (NAMED + '[split]\npolicy = "imagenet"\nlist = "list.csv"\n[[classes]]\nwnid = "n01440764"\n',
     "key 'list' does not apply to policy 'imagenet'"),
    (NAMED + 'root_files = ["notes.txt"]\n' + ONE_CLASS, "names 'notes.txt', but"),
    (NAMED + '[split]\npolicy = "files"\nlist = "other.csv"\n[[classes]]\nwnid = "n01440764"\n',
     "names 'other.csv', but"),
    (NAMED + '[noisy_labels]\nenabled = true\n[split]\npolicy = "files"\nlist = "list.csv"\n' + "".join(
        f'[[classes]]\nwnid = "{w}"\n' for w in WNIDS), "[noisy_labels]: a 'files' manifest ships its own list"),
    (NAMED + ONE_CLASS + '[[published]]\narchive = "one.tgz"\nuploaded = "2030-01"\nsha1 = "x"\n',
     "[[published]] #1: unknown key 'sha1'"),
    # nested too deep for tomllib (a RecursionError traceback before), as arrays or inline tables
    (NAMED + "x = " + "[" * 500 + "]" * 500 + "\n", "not a manifest: arrays or tables nested too deeply to be read"),
    (NAMED + "x = " + "[" * 100_000 + "]" * 100_000 + "\n", "arrays or tables nested too deeply"),
    (NAMED + "x = " + "{a = " * 500 + "1" + "}" * 500 + "\n", "arrays or tables nested too deeply"),
    (NAMED + "x = " + "{a = " * 100_000 + "1" + "}" * 100_000 + "\n", "arrays or tables nested too deeply"),
    # a class of an extra split that is a list or a table (a TypeError traceback: unhashable)
    (NAMED + EXTRA + 'classes = [["n01440764"]]\n', "[[split.extra]] #1: class (a list) is not among"),
    (NAMED + EXTRA + 'classes = [{wnid = "n01440764"}]\n', "class (a table) is not among"),
    # nested 5,000 deep by dotted table headers (tomllib reads those without recursing): the repr of
    # the value in the message recursed
    (NAMED + EXTRA + "[[split.extra.classes]]\n[split.extra.classes." + ".".join(["a"] * 5000) + "]\n",
     "class (a table) is not among"),
    (NAMED + ONE_CLASS + "[[root_files]]\n[root_files." + ".".join(["a"] * 5000) + "]\n",
     "root_files entry (a table) must be a plain file name"),
    (NAMED + '[[classes]]\nwnid = "n01440764"\n[split]\npolicy = "files"\nlist = "list.csv"\n[[split.splits]]\n'
     "[split.splits." + ".".join(["a"] * 5000) + "]\n", "split name (a table) must be a plain name"),
    ('name = "one"\nstem = "' + "x/" * 100_000 + '"\n' + ONE_CLASS, "stem 'x/x/x/"),
    (NAMED + '[split]\npolicy = "random"\nval_fraction = nan\nseed = 1\n[[classes]]\nwnid = "n01440764"\n',
     "val_fraction must be between 0 and 1, not nan"),
    # [source]: where the class list comes from
    (NAMED + 'source = "github"\n' + ONE_CLASS, "[source]: must be a table (url, file, commit, paper, note)"),
    (NAMED + '[source]\nfile = "eval.py"\n' + ONE_CLASS, "[source]: missing key 'url'"),
    (NAMED + '[source]\nurl = "https://x.org"\nlicense = "MIT"\n' + ONE_CLASS,
     "[source]: unknown key 'license' (known: commit, file, note, paper, url)"),
    (NAMED + '[source]\nurl = "github.com/x/y"\n' + ONE_CLASS, "url 'github.com/x/y' must be an http:// or https://"),
    (NAMED + '[source]\nurl = "https://x.org"\ncommit = "3131cace"\n' + ONE_CLASS,
     "commit '3131cace' must be a full git commit hash"),
    (NAMED + '[source]\nurl = "https://x.org"\npaper = 2021\n' + ONE_CLASS, "'paper' must be a str, not int"),
    (NAMED + '[source]\nurl = "https://x.org"\nnote = "a\\u001b[2Jb"\n' + ONE_CLASS,
     "[source]: note holds a line break or another control character"),
])
def test_every_mistake_is_one_line_naming_the_manifest(tmp_path, toml, needle):
    (tmp_path / "list.csv").write_text(SAMPLE_CSV)
    path = tmp_path / "one.toml"
    path.write_bytes(toml if isinstance(toml, bytes) else toml.encode())
    with pytest.raises(UserError) as exc:
        manifests.load_path(path)
    message = str(exc.value)
    assert message.startswith(f"{path}") and "\n" not in message, message
    assert needle in message, message
    assert len(message) < len(str(path)) + 300, message  # a value 200,000 characters long is clipped


def test_a_manifest_is_a_builtin_name_or_a_path():
    assert manifests.load("imagewoof2").stem == "imagewoof2"
    with pytest.raises(UserError, match=f"^unknown manifest 'nope': built-in manifests are "
                                        f"{', '.join(manifests.builtin_names())}; or give the path"):
        manifests.load("nope")
    with pytest.raises(UserError, match="^missing.toml: manifest file not found$"):
        manifests.load("missing.toml")


def test_a_published_entry_takes_size_and_checksums_from_the_shipped_table(tmp_path):
    path = tmp_path / "one.toml"
    path.write_text(NAMED + ONE_CLASS
                    + '[[published]]\narchive = "imagenette2-160.tgz"\nuploaded = "2021-02"\n'
                    + '[[published]]\narchive = "imagenette2-160.tgz"\nuploaded = "2019-12-09"\n'
                    + 'md5 = "' + "0" * 32 + '"\n'
                    + '[[published]]\narchive = "mine.tgz"\nuploaded = "2030-01"\nsize = 5\nroot_files = []\n')
    row, given, mine = manifests.load_path(path).published
    assert (row.size, row.md5, row.sha256[:8]) == (99003388, "e793b78cc4c9e9a4ccc0c1155377a412", "64d0c485")
    assert (given.size, given.md5, given.sha256[:8]) == (98948031, "0" * 32, "88daccb0")  # what it gives wins
    assert (mine.size, mine.md5, mine.sha256, mine.root_files) == (5, "", "", ())  # not in the table: as given


# ------------------------------------------------------------------------------ what new-manifest writes


@pytest.mark.fuzz
@given(st.one_of(st.floats(), st.sampled_from([0.0, -0.0, 1.0, 5e-324, 1e-400, 1 - 1e-16, 0.3])))
def test_new_manifest_writes_a_val_fraction_exactly_when_the_loader_reads_it(workdir, fraction):
    """`new-manifest --val-fraction nan` wrote a manifest the build refused: one check decides both."""
    try:
        text = NewManifest("vf", ("n01440764",), "random", fraction).to_toml()
    except UserError as exc:
        assert str(exc).startswith("--val-fraction "), str(exc)
        written = None
    else:
        written = workdir / "vf.toml"
        written.write_text(text)
        assert manifests.load_path(written).split.val_fraction == fraction
    if written is None:  # the loader refuses the same value, written as TOML writes it
        path = workdir / "vf-by-hand.toml"
        literal = {"nan": "nan", "inf": "inf", "-inf": "-inf"}.get(repr(fraction), repr(fraction))
        path.write_text(NAMED + f'[split]\npolicy = "random"\nval_fraction = {literal}\nseed = 1\n'
                        '[[classes]]\nwnid = "n01440764"\n')
        with pytest.raises(UserError, match="val_fraction must be between 0 and 1"):
            manifests.load_path(path)


@pytest.mark.fuzz
@given(st.text(max_size=30))
def test_new_manifest_writes_any_description_the_loader_reads_back(workdir, description):
    """An emoji was written as two escaped surrogates (json.dumps), which TOML refuses: new-manifest
    wrote a manifest the build refused."""
    try:
        text = NewManifest("d", ("n01440764",), "imagenet", description=description).to_toml()
    except UserError as exc:  # only what cannot be written as UTF-8: a lone surrogate
        assert "not UTF-8 text" in str(exc)
        assert any(0xD800 <= ord(c) <= 0xDFFF for c in description)
        return
    (workdir / "d.toml").write_text(text, encoding="utf-8")
    loaded = manifests.load_path(workdir / "d.toml").description
    assert loaded == (description or "1 ImageNet classes, made with imagenette-build new-manifest.")
