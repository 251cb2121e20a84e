"""Hugging Face's parquet shards (sources/hf_parquet.py): only the row groups that hold a planned
class have their images read."""

from __future__ import annotations

from pathlib import Path

from imagenette_build import classes
from imagenette_build import manifest as manifests
from imagenette_build.progress import Progress
from imagenette_build.samplegen import synthetic_jpeg
from imagenette_build.sources import hf_parquet, open_source

IMAGENETTE = manifests.load("imagenette2").wnids


def test_parquet_reads_only_row_groups_with_planned_classes(archived_layouts, tmp_path, use_settings, monkeypatch):
    import pyarrow.parquet as pq

    root, _ = archived_layouts["hf-parquet"]
    use_settings(tmpdir=tmp_path)
    wanted = {classes.by_wnid()[w].index for w in IMAGENETTE}
    groups = {}  # (file, row group) -> labels, read independently
    for path in sorted((root / "data").glob("*.parquet")):
        pf = pq.ParquetFile(path)
        for rg in range(pf.metadata.num_row_groups):
            groups[(path.name, rg)] = set(pf.read_row_group(rg, columns=["label"]).column(0).to_pylist())
    needed = {k for k, labels in groups.items() if labels & wanted}
    assert 0 < len(needed) < len(groups)  # the sample has row groups of decoys only

    image_reads = []
    real_init, real_read = pq.ParquetFile.__init__, pq.ParquetFile.read_row_group

    def init(self, source, *a, **kw):
        self.test_name = Path(source).name
        real_init(self, source, *a, **kw)

    def read_row_group(self, i, columns=None, **kw):
        if columns and "image" in columns:
            image_reads.append((self.test_name, i))
        return real_read(self, i, columns=columns, **kw)

    monkeypatch.setattr(pq.ParquetFile, "__init__", init)
    monkeypatch.setattr(pq.ParquetFile, "read_row_group", read_row_group)
    source = open_source(root)
    assert isinstance(source, hf_parquet.HFParquetSource)
    source.select(IMAGENETTE, Progress(quiet=True))
    assert set(image_reads) == needed and len(image_reads) == len(needed)
    found = [im for w in IMAGENETTE for im in source.images(w)]
    assert len(found) == 50 and all(im.ref.read() == synthetic_jpeg(im.filename) for im in found)
    assert all((im.split == "val") == im.filename.startswith("ILSVRC2012_val_") for im in found)
    source.close()
    assert list(tmp_path.iterdir()) == []


def test_a_row_group_declaring_more_than_a_shard_holds_is_refused_before_it_is_read(archived_layouts, tmp_path,
                                                                                     use_settings, monkeypatch):
    """Parquet reads a row group's column whole: a hostile shard declaring gigabytes in one row group
    was read whole. The footer's sizes are checked first (the bound lowered here to the sample's)."""
    import pyarrow.parquet as pq
    import pytest

    from imagenette_build.errors import DataError

    root, _ = archived_layouts["hf-parquet"]
    use_settings(tmpdir=tmp_path)
    biggest = max(pq.ParquetFile(p).metadata.row_group(0).total_byte_size for p in (root / "data").glob("*.parquet"))
    monkeypatch.setattr(hf_parquet, "MAX_ROW_GROUP_BYTES", biggest // 2)
    source = open_source(root)
    with pytest.raises(DataError, match=r"row group \d+ declares .* more than a shard's row group may hold"):
        source.select(IMAGENETTE, Progress(quiet=True))
    source.close()
    assert list(tmp_path.iterdir()) == []  # the spill file removed
