# llmops.inference developer entry points. The two that matter:
#   make demo   - the main job: venv, the local test bed (make cluster-up), then playbooks/site.yml
#                 on inventories/testbed-vllm-cpu (real vLLM on a real node), ends with its answer; `make demo-render` only renders
#   make test   - everything CI runs: lint, sanity, unit, integration
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The collection must sit at ansible_collections/llmops/inference for Ansible,
# pytest imports and ansible-test; .build/collections holds a link to this tree.
COLLECTIONS := $(CURDIR)/.build/collections
COLLECTION_LINK := $(COLLECTIONS)/ansible_collections/llmops/inference
INVENTORY ?= inventories/local
export ANSIBLE_COLLECTIONS_PATH := $(COLLECTIONS)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: help venv demo demo-render plan test lint sanity unit integration build changelog clean bench docs ee-context

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t 16

$(STAMP): requirements.txt requirements-test.txt constraints.txt
	@echo ">>> creating $(VENV) and installing pinned Python dependencies"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-test.txt -c constraints.txt
	touch $@

$(COLLECTION_LINK):
	mkdir -p $(dir $@)
	ln -sfn $(CURDIR) $@

venv: $(STAMP) $(COLLECTION_LINK) ## create .venv with the pinned dependencies

# The demo serves the tiny model with the real vLLM engine (CPU build) on a real node of the test bed;
# DEMO_INVENTORY=inventories/testbed deploys the seeds' DeepSeek-R1 2 x 8 A800 shape on the kwok nodes instead.
DEMO_INVENTORY ?= inventories/testbed-vllm-cpu

demo: venv cluster-up ## main job: deploy playbooks/site.yml to the local test bed ($(DEMO_INVENTORY))
	$(if $(findstring vllm-cpu,$(DEMO_INVENTORY)),bash scripts/testbed/wait-images.sh llmops-real-0)
	$(BIN)/ansible-playbook -i $(DEMO_INVENTORY) playbooks/site.yml
	@echo ">>> deployed to the test bed: KUBECONFIG=$(CURDIR)/.state/testbed/kubeconfig" \
	  "$(CURDIR)/.build/testbed/bin/kubectl -n llmops-demo get lws,deploy,pods -o wide"
	$(BIN)/python scripts/testbed/ask.py $(DEMO_INVENTORY)

RENDER_DIR ?= rendered
# Stage 1 installs packages on the inventory's hosts, which render mode must never touch: it is skipped in the
# render run and shown instead as --check --diff against a local Debian rootfs (docs/bare_metal.md, "make demo-render").
demo-render: venv ## render every manifest of playbooks/site.yml for $(INVENTORY) under $(RENDER_DIR)/ (never applies: render mode is forced); stage 1 as --check --diff on a local rootfs
	$(BIN)/ansible-playbook -i $(INVENTORY) playbooks/site.yml --skip-tags prepare -e llmops_apply_mode=render -e llmops_render_dir=$(abspath $(RENDER_DIR))
	$(BIN)/python scripts/stage1_check_diff.py $(INVENTORY) $(RENDER_DIR)

plan: venv ## print the parallelism plan of $(INVENTORY)
	$(BIN)/ansible-playbook -i $(INVENTORY) playbooks/plan.yml

test: venv ## all checks CI runs; pytest's summary line comes last
	bash scripts/test.sh

lint: venv ## ansible-lint (production profile), yamllint, ruff
	bash scripts/test.sh lint

sanity: venv ## ansible-test sanity in a copy under .build/
	bash scripts/test.sh sanity

unit: venv ## pytest unit tests
	bash scripts/test.sh unit

integration: venv ## integration tests and molecule scenarios
	bash scripts/test.sh integration

bench: venv ## benchmarks that print tables: planner speed, test bed times (BENCH_COLD=1 for a cold build)
	$(BIN)/python benchmarks/plan_speed.py
	BENCH_COLD=$${BENCH_COLD:-0} bash benchmarks/testbed_times.sh

build: venv ## build the collection tarball into .build/dist
	$(BIN)/ansible-galaxy collection build --force --output-path .build/dist .

ee-context: venv ## write the execution environment build context (ansible-builder create) into .build/ee
	bash scripts/ee_context.sh

docs: venv ## regenerate the plugin and role reference in docs/reference (antsibull-docs) and docs/serving.md's role tables
	bash scripts/docs_reference.sh
	$(BIN)/python scripts/serving_role_tables.py

changelog: venv ## release the changelog from changelogs/fragments
	$(BIN)/antsibull-changelog release

# --- engine CLI schemas (docs/serving.md "Engine versions"): real parsers, venvs in ~/.cache ---
.PHONY: engine-cli engine-cli-check
ENGINE ?= sglang

engine-cli: ## record the real CLI of ENGINE=sglang|vllm VERSION=x.y.z into tests/unit/fixtures/engine_cli/
	@test -n "$(VERSION)" || { echo "usage: make engine-cli ENGINE=sglang|vllm VERSION=x.y.z"; exit 2; }
	nice -n 10 $(PYTHON) scripts/engine_cli/record.py $(ENGINE) $(VERSION)

engine-cli-check: venv ## run every emitted argv through the real parsers of the recorded venvs (slow)
	PYTHONPATH=$(CURDIR)/tests $(BIN)/python -m pytest -q -p no:cacheprovider -p skip_policy -m engine_cli_live tests/unit

clean: ## remove .venv and .build
	rm -rf $(VENV) .build

# --- Kubernetes test bed (docs/testing.md): real control plane from Go modules, kwok GPU nodes ---
.PHONY: testbed-build cluster-up cluster-down molecule-testbed

testbed-build: ## build the pinned test bed binaries (cached in ~/.cache/llmops-inference)
	bash scripts/testbed/build.sh

cluster-up: ## start (or reuse) the test bed; kubeconfig in .state/testbed/kubeconfig
	bash scripts/testbed/cluster-up.sh

cluster-down: ## stop the test bed processes and remove .state/testbed
	bash scripts/testbed/cluster-down.sh

molecule-testbed: venv ## molecule scenario on the test bed (reuses a running cluster)
	$(BIN)/molecule test -s testbed
