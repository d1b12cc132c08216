# The two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEMO   := config/demo

.PHONY: run test install lint typecheck bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml constraints.txt
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/gateway db upgrade
	$(BIN)/gateway import --accounts $(DEMO)/accounts.csv --meters $(DEMO)/meters.csv \
		--tariffs $(DEMO)/tariffs.csv --elders $(DEMO)/elders.csv
	$(BIN)/gateway serve

test: install lint typecheck
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

bench: install
	$(BIN)/python -m bench.parse
	$(BIN)/python -m bench.worst
	$(BIN)/python -m bench.webhook --concurrency 8
	$(BIN)/python -m bench.webhook --concurrency 32
	$(BIN)/python -m bench.webhook --instructions --requests 1000 --concurrency 16 --log-level info
	$(BIN)/python -m bench.relay
	$(BIN)/python -m bench.lists
	$(BIN)/python -m bench.telegram
	$(BIN)/python -m bench.email
	$(BIN)/python -m bench.smpp

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache .hypothesis *.egg-info
