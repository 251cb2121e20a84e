"""README's "Using the archives" and "From nothing to a training batch", run as written: every
`imagenette-build` line and every Python block, in a folder of their own, for each loader that is
installed (`datasets` and `webdataset` come with the test extra; torch, torchvision and fastai
where present: a block whose imports are missing is skipped, naming them).

The one change to what README says: `--imagenet /data/imagenet` is a synthetic ImageNet here (8
train images a class of imagenette2's list, whose manifest is renamed imagenette2 so that the
build writes `dist/imagenette2-160.tgz` as README says)."""

from __future__ import annotations

import ast
import importlib.util
import io
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from ..conftest import run_cli

README = Path(__file__).resolve().parents[2] / "README.md"
SECTIONS = ("Using the archives", "From nothing to a training batch")
TIMEOUT = 600


def section_blocks(section: str) -> list[tuple[str, str]]:
    """(language, code) of every fenced block of a README section, in order."""
    text = README.read_text()
    body = text.split(f"\n## {section}\n", 1)[1].split("\n## ", 1)[0]
    return [(m[1], m[2]) for m in re.finditer(r"^```(\w*)\n(.*?)^```", body, re.S | re.M)]


def commands(code: str) -> list[list[str]]:
    return [shlex.split(line)[1:] for line in code.splitlines() if line.startswith("imagenette-build ")]


def imported(code: str) -> list[str]:
    """The top-level packages a block imports, in order."""
    names = []
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Import):
            names += [a.name.split(".")[0] for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module.split(".")[0])
    return list(dict.fromkeys(names))


PYTHON_BLOCKS = [(section, i, code) for section in SECTIONS
                 for i, (lang, code) in enumerate(section_blocks(section)) if lang == "python"]


def _id(block) -> str:
    section, i, code = block
    return f"{section.split()[0].lower()}-{i}-{'-'.join(imported(code)[:2])}"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A folder where README's commands have been run as written: {section: folder}."""
    worlds = {}
    # "Using the archives": the build (with the synthetic ImageNet), then the rest as written
    using = tmp_path_factory.mktemp("using")
    imagenet = using / "imagenet"
    r = run_cli("sample-imagenet", imagenet, "--per-class", "8", "-q")
    assert r.returncode == 0, r.stderr
    sample = (imagenet / "imagenette2-sample.toml").read_text()
    (imagenet / "imagenette2.toml").write_text(sample.replace('name = "imagenette2-sample"', 'name = "imagenette2"')
                                               .replace('stem = "imagenette2-sample"', 'stem = "imagenette2"'))
    [first, *rest] = [c for lang, code in section_blocks(SECTIONS[0]) if lang != "python" for c in commands(code)]
    assert "/data/imagenet" in first and "--size" in first
    build = [str(imagenet) if a == "/data/imagenet" else a for a in first] + ["--manifest", str(imagenet / "imagenette2.toml")]
    for args in [build, *rest]:
        r = run_cli(*args, "-q", cwd=using, timeout=TIMEOUT)
        assert r.returncode == 0, (args, r.stderr)
    worlds[SECTIONS[0]] = using
    # "From nothing to a training batch": every command as written
    nothing = tmp_path_factory.mktemp("nothing")
    lines = [c for lang, code in section_blocks(SECTIONS[1]) if lang != "python" for c in commands(code)]
    assert [c[0] for c in lines] == ["sample-imagenet", "--imagenet", "extract"]
    for args in lines:
        r = run_cli(*args, "-q", cwd=nothing, timeout=TIMEOUT)
        assert r.returncode == 0, (args, r.stderr)
    worlds[SECTIONS[1]] = nothing
    return worlds


def test_the_readme_has_the_blocks_this_test_runs():
    libraries = {lib for _, _, code in PYTHON_BLOCKS for lib in imported(code)}
    assert {"torchvision", "fastai", "datasets", "webdataset", "torch"} <= libraries
    assert len(PYTHON_BLOCKS) >= 6


@pytest.mark.parametrize("block", PYTHON_BLOCKS, ids=_id)
def test_a_readme_block_runs_as_written(world, block):
    section, _, code = block
    missing = [lib for lib in imported(code) if importlib.util.find_spec(lib) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed here")
    here = world[section]
    script = here / f"readme_block_{abs(hash(code))}.py"
    script.write_text(code)
    r = subprocess.run([sys.executable, script.name], cwd=here, capture_output=True, text=True, timeout=TIMEOUT)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.strip(), "every README block prints what it made"
    _check_what_it_printed(code, r.stdout)


def _check_what_it_printed(code: str, out: str) -> None:
    """What each kind of block must have made (a batch of the right shape, RGB, the class names)."""
    if "DataLoader" in code and "webdataset" in code:
        assert "torch.Size([16, 128, 128, 3])" in out, out
    elif "DataLoader" in code:
        assert "torch.Size([16, 3, 128, 128])" in out and "['n01440764', 'n02102040', 'n02979186']" in out, out
    elif "load_dataset" in code:
        assert out.startswith("(64, 128, 128, 3) ['tench', 'English springer', 'cassette player']"), out
    elif "webdataset" in code:
        assert out.startswith("RGB "), out
    elif "fastai" in code:
        assert "torch.Size([16, 3, 128, 128])" in out, out


def test_the_parquet_batch_holds_grayscale_members(world):
    """The Hugging Face block stacks a batch in which some images are grayscale JPEGs: the batch
    works because the parquet `image` feature decodes to RGB, not because none was grayscale."""
    import pyarrow.parquet as pq

    import datasets

    folder = world[SECTIONS[0]] / "dist" / "imagenette2-160-parquet"
    train = datasets.load_dataset("parquet", data_files={"train": str(folder / "train-*.parquet")}, split="train")
    first = train.select(range(64)).cast_column("image", datasets.Image(decode=False))
    modes = [Image.open(io.BytesIO(row["image"]["bytes"])).mode for row in first]
    assert "L" in modes and "RGB" in modes, modes
    assert len(pq.ParquetFile(next(folder.glob("train-*.parquet"))).schema_arrow.names) >= 3
