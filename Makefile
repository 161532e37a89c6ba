# Everyday targets. `make help` lists them.
VENV ?= .venv
PY := $(VENV)/bin/python
export PATH := $(CURDIR)/.tools/bin:$(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: help setup control-plane test test-fast test-integrations lint format typecheck crd dev bench kind-e2e helm-lint chart-test images clean

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

setup: ## venv, TensorFlow, node packages, chromium, helm (fresh machine)
	./scripts/setup.sh

control-plane: ## build the pinned Kubernetes control plane for the tests (setup runs it)
	./scripts/control-plane.sh

test: ## the whole test suite (what CI runs)
	$(PY) -m pytest -q -ra

test-fast: ## skip the slow tests (TensorFlow, node, browser)
	$(PY) -m pytest -q -m "not slow"

test-integrations: ## the shop packages (integrations/): Vendure plugin and model-sync, their own tests and end to end
	$(PY) -m pytest -q -ra tests/integrations
constraints: ## pin constraints.txt to the packages of the working venv (what the tests passed with)
	{ head -2 constraints.txt; $(VENV)/bin/pip freeze --exclude-editable | grep -v '^#\|^-e\|^channelmodel'; } > constraints.txt.new
	mv constraints.txt.new constraints.txt

lint: ## ruff + mypy
	$(VENV)/bin/ruff check operator trainer sandbox tests bench
	$(VENV)/bin/ruff format --check operator trainer sandbox tests bench
	$(VENV)/bin/mypy

format: ## apply ruff fixes and formatting
	$(VENV)/bin/ruff check --fix operator trainer sandbox tests bench
	$(VENV)/bin/ruff format operator trainer sandbox tests bench

typecheck: ## mypy only
	$(VENV)/bin/mypy

crd: ## regenerate deploy/crds (and the charts' copies) from the pydantic models
	$(VENV)/bin/channelmodel crd -o deploy/crds/channelmodels.ml.dukarun.io.yaml
	cp deploy/crds/channelmodels.ml.dukarun.io.yaml deploy/helm/channelmodel/crds/
	$(VENV)/bin/channelmodel crd --helm-keep -o deploy/helm/channelmodel-crds/templates/channelmodels.ml.dukarun.io.yaml

dev: ## the whole loop locally, no cluster needed
	$(VENV)/bin/channelmodel dev

bench: ## run every benchmark (minutes); figures go to docs/benchmarks.md
	for b in $(filter-out %_common.py,$(wildcard bench/[a-z]*.py)); do $(PY) $$b || exit 1; done

kind-e2e: ## real cluster: kind, images, chart, a trained model (needs docker)
	./scripts/kind-e2e.sh

helm-lint: ## lint the chart
	helm lint --strict deploy/helm/channelmodel

chart-test: ## chart, RBAC and Dockerfile tests only
	$(PY) -m pytest -q tests/deploy -m "not slow"

images: ## build both images (needs a docker engine)
	docker build -f Dockerfile.operator -t channelmodel-operator:dev .
	docker build -f Dockerfile.trainer -t channelmodel-trainer:dev .

clean:
	rm -rf .mypy_cache .ruff_cache .pytest_cache build dist
