# Two entry points for a fresh machine with Python 3.11:
#   make demo   set up .venv, then release weeks 1-2, grade three sample submissions, print grades and milestones
#   make test   set up .venv, then run the whole test suite (what CI runs through .ci/run)

PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# Grading and tests run one thread per process: two torch threads on a busy 2-core machine made a training
# loop 60 times slower.
export OMP_NUM_THREADS := 1
export MKL_NUM_THREADS := 1

.PHONY: setup demo test benchmark release solutions clean

setup: $(STAMP)

# torch comes first and pinned: a bare `torch` requirement would pull a multi-GB CUDA build.
$(STAMP): requirements.txt constraints.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet "torch==2.13.0"
	$(BIN)/python -m pip install --quiet -c constraints.txt -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

demo: setup
	$(BIN)/course demo

test: setup
	$(BIN)/python -m pytest

benchmark: setup
	$(BIN)/python benchmarks/run.py

release: setup
	$(BIN)/course release
	$(BIN)/course solutions

clean:
	rm -rf $(VENV) build .pytest_cache
