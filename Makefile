# Two commands do everything: `make demo` and `make test`. Both create .venv if missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# torch 2.14.1 + torchvision 0.29.1: the builds that lie on this project's machines' disk
# (torchvision is needed by MONAI Label). GPU users: see README, "GPU".
TORCH_PINS := torch==2.14.1 torchvision==0.29.1
STAMP := $(VENV)/.volgan-installed
DEMO_DIR := demo_output

.PHONY: install demo test data clean-demo

$(STAMP): setup.cfg pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q $(TORCH_PINS)
	$(BIN)/python -m pip install -q -e '.[data,baselines,tracking,test]'
	touch $@

install: $(STAMP)

data: install
	$(BIN)/python data_scripts/make_mr_data.py --out data/mr

demo: data
	$(BIN)/python data_scripts/run_demo.py --data data/mr --out $(DEMO_DIR)

test: install
	$(BIN)/python -m pytest -q -ra tests

clean-demo:
	rm -rf $(DEMO_DIR)
