# Two commands do everything on a fresh machine (each sets up .venv first if needed):
#   make book   run every stage on the embedded cohort (CPU) and build the book
#               (variables: PROFILE=smoke|paper MANIFEST=... SPLIT_SEED=N RUN_DIR=...; the run directory
#               defaults to lgelib book's: runs/<profile>, or runs/<profile>-split<N>)
#   make test   run the test suite
#   make lint   ruff: the code's format and lint rules (pyproject.toml); CI runs it before the tests
#   make benchmark  INR fitting throughput: batched vs one volume at a time, against the matmul peak (benchmarks/README.md)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PROFILE ?= smoke
MANIFEST ?= data_manifest/phantom.yaml
# Where the pinned torch comes from; e.g. TORCH_INDEX=https://download.pytorch.org/whl/cpu for the CPU-only build
# (PyPI's Linux wheel carries CUDA libraries: several GB). Empty: pip's configured index.
TORCH_INDEX ?=

.PHONY: setup test lint book benchmark clean
setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) "$$(grep -E '^torch==' constraints.txt)"
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[dev]"
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 > /dev/null
	touch $@

test: setup
	$(BIN)/python -m pytest

lint: setup
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

book: setup
	$(BIN)/lgelib book --profile $(PROFILE) --manifest $(MANIFEST) $(if $(RUN_DIR),--run-dir $(RUN_DIR)) $(if $(SPLIT_SEED),--split-seed $(SPLIT_SEED))

benchmark: setup
	$(BIN)/python benchmarks/inr_throughput.py

clean:
	rm -rf runs book/_build
