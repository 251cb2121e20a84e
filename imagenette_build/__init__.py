"""imagenette-build: regenerate Imagenette-style ImageNet subsets as deterministic archives."""

__version__ = "0.1.0"
