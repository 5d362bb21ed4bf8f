# Two commands do everything: `make demo` and `make test`. Both create .venv if missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# torch 2.14.1 + torchvision 0.29.1: the builds that lie on this project's machines' disk
# (torchvision is needed by MONAI Label). GPU users: see README, "GPU".
TORCH_PINS := torch==2.14.1 torchvision==0.29.1
STAMP := $(VENV)/.volgan-installed
# MONAI Label in its own environment: its pins would downgrade numpy and jsonschema in the core one
LABEL_VENV := .venv-label
LABEL_STAMP := $(LABEL_VENV)/.volgan-installed
DEMO_DIR := demo_output

.PHONY: install demo test data clean-demo

$(STAMP): setup.cfg pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q $(TORCH_PINS)
	$(BIN)/python -m pip install -q -e '.[data,baselines,tracking,test]'
	touch $@

$(LABEL_STAMP): setup.cfg pyproject.toml Makefile
	test -x $(LABEL_VENV)/bin/python || $(PYTHON) -m venv $(LABEL_VENV)
	$(LABEL_VENV)/bin/python -m pip install -q $(TORCH_PINS)
	$(LABEL_VENV)/bin/python -m pip install -q -e '.[label]'
	touch $@

install: $(STAMP) $(LABEL_STAMP)

data: install
	$(BIN)/python data_scripts/make_mr_data.py --out data/mr

demo: data
	$(BIN)/python data_scripts/run_demo.py --data data/mr --out $(DEMO_DIR)

test: install
	$(BIN)/python -m pytest -q -ra tests

clean-demo:
	rm -rf $(DEMO_DIR)
