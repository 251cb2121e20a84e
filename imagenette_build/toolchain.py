"""What produced the bytes: Python, the Pillow flavour, the resampler, libjpeg, the compressor.

`fingerprint()` is what a resized image's bytes depend on besides its source, size and recipe: the
cache keys entries by it, a cluster build checks that every worker has the client's, and the build
report records it (with the compressor, which the archive's compressed bytes depend on too).
"""

from __future__ import annotations

import hashlib
import platform
import sys
from functools import lru_cache
from pathlib import Path

import PIL
from PIL import features

from . import settings
from ._version import __version__

RESAMPLER_ENV = settings.ENV["resampler"]  # "portable" computes pillow-simd's arithmetic here even on pillow-simd
# The modules whose code decides a resized image's bytes, and the fingerprint a cache entry keeps
# with them (their sha256 is part of the fingerprint).
_BYTES_CODE = ("transform.py", "resample.py", "_resample_jit.py", "duplicates.py")


@lru_cache(maxsize=None)
def pillow_flavour() -> str:
    """'pillow-simd' or 'Pillow': which distribution provides the imported PIL package."""
    try:
        from importlib.metadata import packages_distributions

        dists = packages_distributions().get("PIL", [])
    except Exception:  # pragma: no cover - very old importlib.metadata
        dists = []
    if any(d.lower() == "pillow-simd" for d in dists):
        return "pillow-simd"
    if any(d.lower() == "pillow" for d in dists):
        return "Pillow"
    if dists:
        return dists[0]
    return "pillow-simd" if ".post" in PIL.__version__ else "Pillow"


def pillow_description() -> str:
    return f"{pillow_flavour()} {PIL.__version__}"


def resampler_is_native() -> bool:
    """Does the installed PIL resize with pillow-simd's arithmetic itself? Otherwise `resample`
    computes it (the run's `settings`: IMAGENETTE_BUILD_RESAMPLER=portable asks for the port)."""
    return pillow_flavour() == "pillow-simd" and settings.current().resampler != "portable"


def resampler_description() -> str:
    """Which code computed the resized pixels, for --version and the report."""
    if resampler_is_native():
        return f"pillow-simd {PIL.__version__}"
    from .resample import engine

    return f"imagenette-build's port of pillow-simd's resampling ({engine()})"


def libjpeg_version() -> str:
    turbo = features.version("libjpeg_turbo") if features.check_feature("libjpeg_turbo") else None
    return f"libjpeg-turbo {turbo}" if turbo else f"libjpeg {features.version('jpg')}"


def jpeg_problem() -> str | None:
    """Why this Pillow's JPEG library cannot give the published bytes, or None. The published
    images were encoded by libjpeg-turbo; IJG libjpeg (old Pillow wheels) decodes and encodes
    differently (libjpeg-turbo 2.1.5 and 3.2 agree)."""
    if features.check_feature("libjpeg_turbo"):
        return None
    return (f"this Pillow uses {libjpeg_version()}, not libjpeg-turbo: its JPEGs cannot be byte-identical "
            "to the published images (install a Pillow built with libjpeg-turbo, like the PyPI wheels)")


@lru_cache(maxsize=None)
def _code_digest() -> str:
    h = hashlib.sha256()
    here = Path(__file__).parent
    for name in _BYTES_CODE:
        try:
            h.update((here / name).read_bytes())
        except OSError:  # pragma: no cover - installed without sources
            h.update(b"unknown")
    return h.hexdigest()[:16]


def fingerprint() -> dict:
    """What a resized image's bytes depend on in this process, besides source, size and recipe."""
    return {"imagenette_build": __version__, "code": _code_digest(), "pillow": pillow_description(),
            "libjpeg": libjpeg_version(), "resampler": "pillow-simd" if resampler_is_native() else "port"}


def toolchain(compressor: str) -> dict:
    """`compressor`: what deflated the archive (`pack.compressor_name`, one per archive)."""
    import joblib
    import numpy

    return {
        "fingerprint": fingerprint(),  # what the cache key and a cluster's check use
        "imagenette_build": __version__,
        "python": platform.python_version(),
        "implementation": sys.implementation.name,
        "machine": platform.machine(),
        "pillow": pillow_description(),
        "pillow_flavour": pillow_flavour(),
        "resampler": resampler_description(),
        "libjpeg": libjpeg_version(),
        "compressor": compressor,
        "joblib": joblib.__version__,
        "numpy": numpy.__version__,
    }
