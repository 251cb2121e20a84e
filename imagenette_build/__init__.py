"""imagenette-build: regenerate Imagenette-style ImageNet subsets as deterministic archives.

The Python API (`api.py`): `build`, `verify`, `extract`, `preview`, `compare`, and the errors they raise,
`UserError` and `DataError`. They are imported on first use, so that `import imagenette_build`
stays light for the worker processes.
"""

from ._version import __version__  # noqa: F401 (re-exported)

_API = ("build", "verify", "extract", "preview", "compare", "UserError", "DataError")


def __getattr__(name):
    if name in _API:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'imagenette_build' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_API))
