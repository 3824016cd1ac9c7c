# Two commands on a fresh machine: `make demo` and `make test`. Both create .venv first.
VENV ?= .venv
PY := $(VENV)/bin/python
EXTRAS ?= cpu,train,serve,demo,dev
# The serving image as deploy/kserve/ names it: $(IMAGE):$(VERSION) and $(IMAGE):$(VERSION)-gpu, the version read from
# convzoo/__init__.py. Built by the first of docker, podman and buildah found (BUILDER=... to choose).
VERSION := $(shell sed -n 's/^__version__ = "\(.*\)"$$/\1/p' convzoo/__init__.py)
IMAGE ?= ghcr.io/convzoo/convzoo
BUILDER ?= $(firstword $(foreach tool,docker podman buildah,$(shell command -v $(tool) 2>/dev/null)))

.PHONY: demo test test-fast test-container system venv lenet clean image image-gpu floors

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

image:               ## build the serving image the KServe manifests name: $(IMAGE):$(VERSION) (Dockerfile)
	@test -n "$(BUILDER)" || { echo "make image: no docker, podman or buildah here; install one or set BUILDER"; exit 1; }
	$(BUILDER) build -t $(IMAGE):$(VERSION) -f Dockerfile .

image-gpu:           ## the CUDA variant: $(IMAGE):$(VERSION)-gpu (Dockerfile.gpu)
	@test -n "$(BUILDER)" || { echo "make image-gpu: no docker, podman or buildah here; install one or set BUILDER"; exit 1; }
	$(BUILDER) build -t $(IMAGE):$(VERSION)-gpu -f Dockerfile.gpu .

floors: venv        ## install the declared lower bounds in fresh venvs and run the torch-free commands (10-20 min)
	$(PY) scripts/check_floors.py

lenet: venv          ## train, export and evaluate LeNet-5 on Fashion-MNIST into ./store
	$(VENV)/bin/convzoo train lenet5-fashion --epochs 15 --out runs
	$(VENV)/bin/convzoo export lenet5-fashion --checkpoint runs/lenet5-fashion/best.pt --out store
	$(VENV)/bin/convzoo eval lenet5-fashion --store store

clean:
	rm -rf $(VENV) .venv-kserve runs store
