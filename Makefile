# ecbao — `make run` and `make test` are all a fresh machine with Python 3.11 needs.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint format bench fuzz messages install clean-data

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/python -m ecbao.devstack run

test: $(STAMP)
	$(BIN)/python -m ecbao.devstack test $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Long Schemathesis run against the live API (all operations, all phases); summary → docs/api-fuzz.md.
fuzz: $(STAMP)
	ECBAO_FUZZ=long $(BIN)/python -m ecbao.devstack test -q tests/foundation/test_schemathesis.py $(ARGS)

bench: $(STAMP)
	$(BIN)/python -m ecbao.devstack bench $(ARGS)

# Regenerate translation catalogues (needs GNU gettext); the compiled .mo files are committed.
messages: $(STAMP)
	DATABASE_URL=postgresql://x@localhost/x REDIS_URL=redis://localhost:6379/0 DEBUG=1 \
	  $(BIN)/python manage.py makemessages -l zh_Hans -l en --ignore '.venv/*' --ignore '.data/*'
	DATABASE_URL=postgresql://x@localhost/x REDIS_URL=redis://localhost:6379/0 DEBUG=1 \
	  $(BIN)/python manage.py compilemessages --ignore '.venv/*'

clean-data:
	rm -rf .data
