# Two set-up commands (see README): `make run` and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export OMP_NUM_THREADS ?= 1
export TOKENIZERS_PARALLELISM ?= false
export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1
export ANONYMIZED_TELEMETRY ?= False

.PHONY: run test lint venv prepare clean-data bench-text

venv: $(STAMP)

$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

# Applies migrations, trains/loads the cached models and builds the knowledge
# base index when missing or stale, then serves on http://127.0.0.1:8000. The
# delivery worker (tip reports -> agencies and counselors) runs as a background
# thread of the same process (ASSISTANT_ESCALATION__WORKER_IN_SERVE=true, the
# default); to scale, turn it off and run `python -m assistant worker` beside it.
run: $(STAMP)
	$(BIN)/python -m assistant serve

test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

clean-data:
	rm -rf var
