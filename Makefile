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

.PHONY: help venv data reproduce test bench lab clean
help:
	@echo "make reproduce   create the venv, get the data, run every notebook at PROFILE=$(PROFILE)"
	@echo "                 (JOBS=2, the default: two at a time; ONLY=\"01 07\": just those; FORCE=1: rerun complete ones)"
	@echo "make test        run the test suite (pytest; notebooks at the smoke profile)"
	@echo "make data        fetch CIFAR-10, PTB and WikiText-2 into data/ (mirror: EGS_DATA_MIRROR)"
	@echo "make bench       speed/memory ratios of the EGS search step vs a dense DARTS step"
	@echo "make lab         open JupyterLab on notebooks/"

venv: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml
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
