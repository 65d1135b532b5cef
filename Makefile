# ChatPad — the two commands are `make dev` and `make test`; both install what they need.
SHELL := /bin/bash
.DEFAULT_GOAL := help
VENV := .venv
PY := $(VENV)/bin/python
WITH_SERVICES := infra/with-services.sh

.PHONY: help bootstrap widget services services-stop migrate seed build dev test openapi lint bench layers clean-local

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

bootstrap: ## Install the local tools (virtualenv with embedded Postgres, moto, cargo-lambda, cfn-lint, model)
	@infra/bootstrap.sh

widget: bootstrap ## Bundle the widget (functions/serve-widget/widget) into the dist/ serve-widget embeds; fails over budget
	@infra/widget.sh build

services: bootstrap ## Start Postgres+pgvector and moto (S3/SQS/DynamoDB) in the background; writes .local/env
	@$(PY) infra/stack.py start

services-stop: ## Stop what `make services` started
	@if [ -x $(PY) ]; then $(PY) infra/stack.py stop; fi

migrate: bootstrap ## Apply the SQL migrations as the owner role (a no-op when up to date)
	@$(WITH_SERVICES) cargo run --quiet -p chatpad-shared --bin chatpad-migrate

seed: bootstrap ## Create the demo owner, agent and API key (idempotent); writes .local/demo.env
	@$(WITH_SERVICES) cargo run --quiet -p chatpad-shared --bin chatpad-dev-seed

build: widget ## Build every function (debug)
	cargo build --workspace

dev: bootstrap build ## Run everything locally: services, migrations, demo data, all functions
	@infra/dev.sh

test: bootstrap widget ## The whole suite: real Postgres, moto, the functions over HTTP, schemathesis, cfn-lint, the widget in Chromium
	cargo fmt --all --check
	cargo build --workspace --bins
	$(WITH_SERVICES) infra/with-functions.sh infra/test-suite.sh
	cargo clippy --workspace --all-targets --all-features --quiet -- -D warnings

openapi: ## Regenerate functions/management-api/openapi.json from the code
	cargo run --quiet -p management-api --example openapi > functions/management-api/openapi.json

lint: widget ## Formatting and clippy only
	cargo fmt --all --check
	cargo clippy --workspace --all-targets --all-features -- -D warnings

bench: bootstrap widget ## Benchmarks: widget bundle size, binary size, cold start, memory (release builds)
	@infra/bench.sh

layers: bootstrap ## Prepare the Lambda layer with the local embedding model (before `sam build`)
	@$(PY) infra/stack.py layers

clean-local: services-stop ## Remove local state (database, logs, secrets)
	rm -rf .local
