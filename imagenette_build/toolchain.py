"""What produced the bytes: Python, Pillow flavour and libjpeg-turbo, the compressor. The archive's
compressed bytes depend on these; the build report records them."""

from __future__ import annotations

import platform
import sys
from functools import lru_cache

import PIL
from PIL import features


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


def libjpeg_version() -> str:
    turbo = features.version("libjpeg_turbo") if features.check_feature("libjpeg_turbo") else None
    return f"libjpeg-turbo {turbo}" if turbo else f"libjpeg {features.version('jpg')}"


def toolchain(compressor: str) -> dict:
    """`compressor`: what deflated the archive (`pack.compressor_name`, one per archive)."""
    from . import __version__

    import joblib
    import numpy

    return {
        "imagenette_build": __version__,
        "python": platform.python_version(),
        "implementation": sys.implementation.name,
        "machine": platform.machine(),
        "pillow": pillow_description(),
        "pillow_flavour": pillow_flavour(),
        "libjpeg": libjpeg_version(),
        "compressor": compressor,
        "joblib": joblib.__version__,
        "numpy": numpy.__version__,
    }
