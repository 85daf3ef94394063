# The two entry points of the README: `make demo` and `make test`. Each creates .venv when missing.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO_DIR ?= demo
DEMO_CUSTOMERS ?= 20000

.PHONY: demo test lint bench bench-large bench-smoke clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[dev,spark]'
	touch $@ $(VENV)/.installed

demo: $(VENV)/.installed
	$(BIN)/tierwise generate --customers $(DEMO_CUSTOMERS) --out $(DEMO_DIR) --seed 7
	$(BIN)/tierwise --config $(DEMO_DIR)/tierwise.toml ingest
	$(BIN)/tierwise --config $(DEMO_DIR)/tierwise.toml quality
	$(BIN)/tierwise --config $(DEMO_DIR)/tierwise.toml run
	$(BIN)/tierwise --config $(DEMO_DIR)/tierwise.toml playbook apply
	$(BIN)/tierwise --config $(DEMO_DIR)/tierwise.toml complaints import
	@$(BIN)/tierwise --config $(DEMO_DIR)/tierwise.toml users add admin --role admin 2>/dev/null \
	  || $(BIN)/tierwise --config $(DEMO_DIR)/tierwise.toml users reset-password admin
	@echo "dashboard on http://127.0.0.1:8000/ (sign in as admin with the password above; JSON API under /api/v1)"
	$(BIN)/tierwise --config $(DEMO_DIR)/tierwise.toml serve --host 127.0.0.1 --port 8000

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/lint-imports
	$(BIN)/mypy

test: lint
	$(BIN)/pytest

bench: $(VENV)/.installed-dev
	$(BIN)/pip install -q -r bench/requirements.txt
	$(BIN)/python -m bench.run

bench-smoke: $(VENV)/.installed-dev
	$(BIN)/pip install -q -r bench/requirements.txt
	$(BIN)/python -m bench.run --smoke

bench-large: $(VENV)/.installed-dev
	$(BIN)/pip install -q -r bench/requirements.txt
	$(BIN)/python -m bench.run --large

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache .mypy_cache .ruff_cache
