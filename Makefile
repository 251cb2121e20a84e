# imagenette-build developer commands. PYTHON is the interpreter of your virtual environment.
PYTHON ?= .venv/bin/python
DEMO ?= demo

.PHONY: install test demo bench clean

install:            ## a virtual environment in .venv with the project and its test tools
	python3 -m venv .venv
	.venv/bin/python -m pip install -e ".[test]"

test:               ## the test suite (what CI runs)
	$(PYTHON) -m pytest -q

demo:               ## a synthetic ImageNet with the whole imagenette2 file list, built at 160 px
	rm -rf $(DEMO)
	$(PYTHON) -m imagenette_build.cli sample-imagenet $(DEMO)/imagenet --layout flat-devkit
	$(PYTHON) -m imagenette_build.cli --imagenet $(DEMO)/imagenet --size 160 --out $(DEMO)/dist
	cd $(DEMO)/dist && sha256sum -c SHA256SUMS

clean:
	rm -rf $(DEMO) dist .pytest_cache
