# tripstream: `make run` brings the pipeline up, `make test` runs the tests.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
TS     := $(BIN)/tripstream
ROWS   ?= 2000000
FILES  ?= 20
CHROMIUM := /usr/bin/chromium
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.DEFAULT_GOAL := help
.PHONY: help install run up down status test test-fast lint format bench bench-smoke clean \
        all spark-submit logs compose-down

help: ## show this help
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-13s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "Python 3.11 is needed: install python3.11 (or set PYTHON=...)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP) ## create .venv and install tripstream with its dependencies

run: $(STAMP) ## start Postgres, broker, Spark (1 master, 2 workers), producer and streaming job
	$(TS) up

up: run ## same as run

down: $(STAMP) ## stop everything `make run` started (state is kept)
	$(TS) down

status: $(STAMP) ## per-file ingestion status (tripstream status --follow to stream it)
	$(TS) status

test: $(STAMP) $(CHROMIUM) ## unit + integration tests against real services on free ports
	$(BIN)/pytest -q

# The dashboard test drives Debian's Chromium (a browser tool's own download fails here).
$(CHROMIUM):
	@command -v apt-get >/dev/null || { echo "the dashboard test needs Chromium at $(CHROMIUM): install it (Debian: apt-get install chromium)"; exit 1; }
	@echo "installing Debian's chromium for the dashboard test"
	@$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium >/dev/null || { echo "could not install chromium: run apt-get install chromium as root, then make test"; exit 1; }

test-fast: $(STAMP) ## unit tests only
	$(BIN)/pytest -q -m "not integration"

lint: $(STAMP) ## ruff, ruff format --check, mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP) ## apply ruff fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: $(STAMP) ## COPY ceiling vs full pipeline (ROWS=, FILES=); results in bench/results/
	$(TS) bench --rows $(ROWS) --files $(FILES)

bench-smoke: $(STAMP) ## a tiny benchmark run that checks the report
	$(TS) bench --smoke

clean: ## remove all local state (.tripstream/: Postgres, broker, checkpoints) and data/
	-@[ -x $(TS) ] && $(TS) down --purge >/dev/null 2>&1 || true
	rm -rf .tripstream data

# --- containerised path (needs a Docker engine) -----------------------------------------
all: ## build and start the Docker Compose cluster (needs .env, see .env.example)
	@test -f .env || { echo "make all needs a .env with passwords: cp .env.example .env, then set POSTGRES_PASSWORD, READER_PASSWORD and JUPYTER_TOKEN"; exit 1; }
	@for key in POSTGRES_PASSWORD READER_PASSWORD JUPYTER_TOKEN; do \
	  grep -Eq "^$$key=.+" .env || { echo "make all: $$key is empty in .env; set it (no default works)"; exit 1; }; \
	done
	docker compose up -d --build

spark-submit: ## (re)submit the streaming job to the compose cluster
	docker compose restart streaming

logs: ## follow the compose logs
	docker compose logs -f --tail=100

compose-down: ## stop the compose cluster
	docker compose down
