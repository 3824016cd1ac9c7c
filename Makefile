# Two commands on a fresh machine: `make demo` and `make test`. Both create .venv first.
VENV ?= .venv
PY := $(VENV)/bin/python
EXTRAS ?= cpu,train,serve,demo,dev

.PHONY: demo test test-fast test-container system venv lenet clean

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -e '.[$(EXTRAS)]'
	touch $@

venv: $(VENV)/.installed

demo: venv           ## launch the Gradio app on the shipped models (http://127.0.0.1:7860)
	$(VENV)/bin/convzoo demo

system:              ## the Debian packages the tests need (Fashion-MNIST, Chromium), when missing
	@bash scripts/system_packages.sh

test: venv system    ## the whole test suite
	$(PY) -m pytest -q --durations=15

test-fast: venv      ## the inner loop, under 30 s: the unit tier (torch-free, no servers, processes or browsers)
	$(PY) -m pytest -q -m unit

test-container: venv ## build the serving image with buildah from the Dockerfile and run it (about 2 minutes)
	@bash scripts/system_packages.sh buildah podman debootstrap
	$(PY) -m pytest -q -m container tests/test_container.py

lenet: venv          ## train, export and evaluate LeNet-5 on Fashion-MNIST into ./store
	$(VENV)/bin/convzoo train lenet5-fashion --epochs 15 --out runs
	$(VENV)/bin/convzoo export lenet5-fashion --checkpoint runs/lenet5-fashion/best.pt --out store
	$(VENV)/bin/convzoo eval lenet5-fashion --store store

clean:
	rm -rf $(VENV) .venv-kserve runs store
