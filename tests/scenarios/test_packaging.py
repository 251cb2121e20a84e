"""Built-in manifests and data must be found from an installed package, not only from a checkout."""

import subprocess
import sys


def test_builtin_manifests_load_by_name_outside_the_checkout(tmp_path):
    code = ("import imagenette_build.manifest as m; "
            "print(m.load('imagewoof2').stem, len(m.load('imagenette2').listed_images()), m.builtin_names())")
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[:2] == ["imagewoof2", "13394"]
    assert "'imagenette2'" in r.stdout


def test_shipped_tables_are_found_outside_the_checkout(tmp_path):
    code = ("from imagenette_build import classes, published; "
            "print(len(classes.all_classes()), len(published.shipped_uploads()))")
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["1000", "24"]


def test_console_script_is_installed(tmp_path):
    import shutil

    exe = shutil.which("imagenette-build") or str(__import__("pathlib").Path(sys.executable).with_name("imagenette-build"))
    r = subprocess.run([exe, "--version"], cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.startswith("imagenette-build ")
