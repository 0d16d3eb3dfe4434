# egs: `make reproduce` runs the paper's notebooks; `make test` runs the test suite.
# Both create the virtual environment on first use. Override e.g. `make reproduce PROFILE=smoke`.

PYTHON      ?= python3.11
VENV        ?= .venv
PY          := $(VENV)/bin/python
PROFILE     ?= cpu
# torch/torchvision pair known to import together (PyPI's torchvision does not import beside the
# CPU-only torch 2.13.0 wheel); override TORCH_SPEC for another platform or CUDA build.
TORCH_SPEC  ?= torch==2.14.1 torchvision==0.29.1
# A local data mirror (same layout as data/) is used when present, else datasets are downloaded.
EGS_DATA_MIRROR ?= $(firstword $(wildcard ../shared/data))
export EGS_DATA_MIRROR

# `make reproduce` runs independent notebooks two at a time (JOBS=2, one thread each: on 2 cores about 1.2x
# the throughput of one notebook with two threads); `ONLY="03 04"` runs just those (their inputs from other
# notebooks must exist); FORCE=1 runs complete notebooks again.
JOBS        ?= 2
ONLY        ?=
FORCE       ?=

.PHONY: help setup venv data reproduce test bench lab clean
help:
	@echo "make setup       install Graphviz (dot) if it is missing (the other targets do this first)"
	@echo "make reproduce   create the venv, get the data, run every notebook at PROFILE=$(PROFILE)"
	@echo "                 (JOBS=2, the default: two at a time; ONLY=\"01 07\": just those; FORCE=1: rerun complete ones)"
	@echo "make test        run the test suite (pytest; notebooks at the smoke profile)"
	@echo "make data        fetch CIFAR-10, PTB and WikiText-2 into data/ (mirror: EGS_DATA_MIRROR)"
	@echo "make bench       speed/memory ratios of the EGS search step vs a dense DARTS step"
	@echo "make lab         open JupyterLab on notebooks/"

# Graphviz's `dot` draws the cell diagrams (notebooks, `egs draw`, tests). When it is missing, `setup` installs it
# with the system's package manager where it can (apt-get or dnf as root or with passwordless sudo, or Homebrew);
# otherwise it stops before any other work, with one line that says how.
setup:
	@command -v dot >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; elif sudo -n true 2>/dev/null; then SUDO=sudo; else SUDO=none; fi; \
	  if [ "$$SUDO" != none ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Graphviz (apt-get)"; $$SUDO apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq graphviz >/dev/null; \
	  elif [ "$$SUDO" != none ] && command -v dnf >/dev/null 2>&1; then echo "installing Graphviz (dnf)"; $$SUDO dnf install -y -q graphviz; \
	  elif command -v brew >/dev/null 2>&1; then echo "installing Graphviz (brew)"; brew install graphviz; \
	  else echo "egs needs Graphviz's dot and cannot install it here: run 'sudo apt-get install graphviz' (or 'brew install graphviz', 'conda install graphviz'), then make again" >&2; exit 1; fi; \
	  command -v dot >/dev/null 2>&1 || { echo "Graphviz was installed but dot is not on PATH; add it to PATH, then make again" >&2; exit 1; }; }

# setup is an order-only prerequisite of the install itself (not a sibling of it), so under `make -j` pip never
# starts before setup has succeeded, and a present Graphviz does not force a reinstall.
venv: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml | setup
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install $(TORCH_SPEC)
	$(PY) -m pip install -e ".[test]"
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $@

data: venv
	$(PY) -m egs data fetch all $(if $(EGS_DATA_MIRROR),--mirror $(EGS_DATA_MIRROR))

reproduce: venv data
	$(PY) -m egs reproduce --profile $(PROFILE) --jobs $(JOBS) $(if $(ONLY),--only $(ONLY)) $(if $(FORCE),--force)

test: venv
	$(PY) -m pytest -q

bench: venv
	$(PY) benchmarks/search_step.py

lab: venv
	$(VENV)/bin/jupyter lab notebooks/

clean:
	rm -rf results .pytest_cache
