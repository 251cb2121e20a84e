# imagenette-build developer commands. From a fresh clone, `make demo` and `make test` first make
# a virtual environment in .venv and install the project into it. CI passes its own PYTHON.
VENV ?= .venv
PYTHON ?= $(VENV)/bin/python
DEMO ?= demo
CLI = $(PYTHON) -m imagenette_build.cli

ifeq ($(PYTHON),$(VENV)/bin/python)
SETUP := $(VENV)/.installed
endif

SIMD_VENV ?= .venv-simd

.PHONY: install simd test demo cluster-demo bench bench-layouts bench-cluster bench-classmix bench-scale bench-train-tar clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet -e ".[test]"
	touch $@

simd: $(SIMD_VENV)/.installed  ## .venv-simd: the project with pillow-simd (compiled here), OpenCV and pyvips, for the benchmark

$(SIMD_VENV)/.installed: pyproject.toml
	python3 -m venv $(SIMD_VENV)
	$(SIMD_VENV)/bin/python -m pip install --quiet -e ".[test]" opencv-python-headless pyvips pyvips-binary
	$(SIMD_VENV)/bin/python -m pip uninstall --quiet -y pillow
	$(SIMD_VENV)/bin/python -m pip install --quiet pillow-simd
	touch $@

test: $(SETUP)      ## the test suite (what CI runs)
	$(PYTHON) -m pytest -q

demo: $(SETUP)      ## a synthetic ImageNet with the whole imagenette2 file list, built at 160 px
	rm -rf $(DEMO)
	$(CLI) sample-imagenet $(DEMO)/imagenet --layout flat-devkit
	$(CLI) --imagenet $(DEMO)/imagenet --size 160 --out $(DEMO)/dist
	cd $(DEMO)/dist && sha256sum -c SHA256SUMS
	@echo "demo: built $(DEMO)/dist/imagenette2-160.tgz from a synthetic ImageNet in $(DEMO)/imagenet"

cluster-demo: $(SETUP)  ## the demo built on a Dask scheduler + 2 workers started on loopback (then stopped), compared with a local build
	test -d $(DEMO)/imagenet/train || $(CLI) sample-imagenet $(DEMO)/imagenet --layout flat-devkit
	rm -rf $(DEMO)/dist-local $(DEMO)/dist-cluster
	$(CLI) --imagenet $(DEMO)/imagenet --size 160 --out $(DEMO)/dist-local
	$(PYTHON) scripts/loopback_cluster.py --workers 2 --dir $(DEMO)/cluster -- \
		$(CLI) --imagenet $(DEMO)/imagenet --size 160 --out $(DEMO)/dist-cluster --scheduler {scheduler}
	cd $(DEMO)/dist-cluster && sha256sum -c SHA256SUMS
	cmp $(DEMO)/dist-local/imagenette2-160.tgz $(DEMO)/dist-cluster/imagenette2-160.tgz
	@echo "cluster-demo: $(DEMO)/dist-cluster/imagenette2-160.tgz, built on the cluster, is byte-identical to the local build"

clean:
	rm -rf $(DEMO) dist .pytest_cache

bench: $(SETUP) $(SIMD_VENV)/.installed  ## side-by-side benchmark (minutes; never in CI; needs pigz); table goes to stdout
	$(SIMD_VENV)/bin/python bench/bench.py --stock-python $(PYTHON)

bench-cluster: $(SETUP)  ## local build against LocalCluster and a dask scheduler+workers on loopback (minutes; never in CI)
	$(PYTHON) bench/cluster.py

bench-layouts: $(SETUP)  ## the same images from extracted folders and from the original tars (minutes; never in CI)
	$(PYTHON) bench/layouts.py

bench-classmix: $(SETUP)  ## classes in the first batches of 64 of the WebDataset output of the whole imagenette2 list at 160 (minutes the first time; never in CI)
	$(PYTHON) bench/classmix.py

bench-scale: $(SETUP)  ## all 1000 classes at 15, 60, 150 images a class, built at 160 px (an hour or more, ~20 GB in bench/out/scale; never in CI)
	$(PYTHON) bench/scale.py

bench-train-tar: $(SETUP)  ## the bytes a build of imagenette2's classes reads from a synthetic ILSVRC2012_img_train.tar of 1000 class tars (needs strace; never in CI)
	$(PYTHON) bench/train_tar_reads.py
