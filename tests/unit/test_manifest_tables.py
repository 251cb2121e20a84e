"""The manifest's [source] and [[published]] tables (manifest_tables.py), as the loader reads them.
The one-line errors of both are in test_manifest.py with every other manifest mistake."""

from __future__ import annotations

from imagenette_build import manifest as manifests
from imagenette_build.manifest_tables import ListSource

HEAD = 'name = "one"\nstem = "one"\n'
ONE_CLASS = '[split]\npolicy = "imagenet"\n[[classes]]\nwnid = "n01440764"\n'
COMMIT = "3131cacee97c407bd2ecea15846a67817a64f924"


def _load(tmp_path, text):
    path = tmp_path / "one.toml"
    path.write_text(text)
    return manifests.load_path(path)


def test_a_source_is_read_whole_and_given_back_without_empty_fields(tmp_path):
    m = _load(tmp_path, HEAD + f'[source]\nurl = "https://github.com/o/r"\nfile = "eval.py"\ncommit = "{COMMIT}"\n'
              'paper = "A. Author: A Paper, 2021"\n' + ONE_CLASS)
    assert m.source == ListSource("https://github.com/o/r", "eval.py", COMMIT, "A. Author: A Paper, 2021", "")
    assert m.source.to_json() == {"url": "https://github.com/o/r", "file": "eval.py", "commit": COMMIT,
                                  "paper": "A. Author: A Paper, 2021"}
    assert m.source.location() == "https://github.com/o/r eval.py @ 3131cacee97c"


def test_a_source_may_be_dotted_keys_and_classes_inline_tables(tmp_path):
    """The built-in lists of 100 to 1000 classes are written so: plain TOML, the same manifest."""
    m = _load(tmp_path, HEAD + 'source.url = "https://x.org"\nsplit.policy = "imagenet"\n'
              'classes = [\n  { wnid = "n01440764", name = "tench" },  # a comment\n  { wnid = "n01443537" },\n]\n')
    assert m.source == ListSource("https://x.org") and m.source.location() == "https://x.org"
    assert m.wnids == ("n01440764", "n01443537") and m.classes[1].name == "goldfish"


def test_a_manifest_without_a_source_has_none(tmp_path):
    assert _load(tmp_path, HEAD + ONE_CLASS).source is None


def test_the_source_is_part_of_the_manifests_hash(tmp_path):
    """The report names the manifest by its sha256: a changed source is a changed manifest."""
    one = _load(tmp_path, HEAD + '[source]\nurl = "https://x.org/a"\n' + ONE_CLASS).sha256
    two = _load(tmp_path, HEAD + '[source]\nurl = "https://x.org/b"\n' + ONE_CLASS).sha256
    assert one != two
