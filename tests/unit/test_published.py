"""The published uploads: one table (manifests/published_archives.csv) holds each upload's size and
checksums; a manifest names its uploads by archive and date and adds only their root files and
member lists."""

from imagenette_build import manifest as manifests
from imagenette_build.published import Published, shipped_uploads, with_shipped_checksums
from imagenette_build.shipped import read_shipped


def test_the_table_has_one_row_per_upload_and_the_manifests_name_only_its_rows():
    keys = {(r.archive, r.uploaded) for r in shipped_uploads()}
    assert len(keys) == len(shipped_uploads())
    for name in manifests.builtin_names():
        for p in manifests.load(name).published:
            assert (p.archive, p.uploaded) in keys, (name, p)


def test_the_shipped_manifests_leave_size_and_checksums_to_the_table():
    for name in manifests.builtin_names():
        doc = manifests.tomllib.loads(read_shipped(f"{name}.toml"))
        for entry in doc.get("published", []):
            assert set(entry) <= {"archive", "uploaded", "root_files", "members"}, (name, entry)


def test_a_manifest_entry_gets_the_size_and_checksums_of_its_row():
    m = manifests.load("imagewoof2")
    [p] = [p for p in m.published if (p.archive, p.uploaded) == ("imagewoof2-320.tgz", "2019-12-09")]
    assert (p.size, p.md5, p.sha256[:8]) == (328288506, "af65be7963816efa949fa3c3b4947740", "4e4905ed")
    assert p.root_files == () and p.members == "imagewoof2-320_2019-12.sha256"


def test_values_a_manifest_gives_are_kept_and_unknown_uploads_are_left_alone():
    given = with_shipped_checksums(Published("imagenette2-160.tgz", "2021-02", 1, "", "", "ab" * 32))
    assert (given.size, given.md5, given.sha256) == (1, "e793b78cc4c9e9a4ccc0c1155377a412", "ab" * 32)
    unknown = Published("mine.tgz", "2030-01", None, "", "", "")
    assert with_shipped_checksums(unknown) == unknown


def test_each_upload_is_listed_once_with_what_its_manifest_adds():
    """A manifest's entry replaces the table's row of the same upload: listed twice, verify said
    "matches imagewoof2.tgz as uploaded 2019-12-09; imagewoof2.tgz as uploaded 2019-12-09"."""
    from imagenette_build.published import published_uploads

    m = manifests.load("imagewoof2")
    uploads = published_uploads(None, m.published)
    keys = [(p.archive, p.uploaded) for p in uploads]
    assert len(keys) == len(set(keys)) == len(shipped_uploads())
    [p] = [p for p in uploads if (p.archive, p.uploaded) == ("imagewoof2-320.tgz", "2019-12-09")]
    assert p.root_files == () and p.members == "imagewoof2-320_2019-12.sha256" and p.size == 328288506
    assert published_uploads(None) == list(shipped_uploads())
