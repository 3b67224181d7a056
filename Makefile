# Every target sets itself up: .venv is (re)built from requirements.lock whenever the lock changes.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.ccp-installed
STACK ?= dev
PROGRAM ?= .
NAME ?=
FROM ?= banks

.PHONY: venv review test bench lint collaboration clean

venv: $(STAMP)

$(STAMP): requirements.lock
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -qq --disable-pip-version-check -r requirements.lock
	@touch $@

review: $(STAMP)
	@$(PY) -m policies.review --stack $(STACK) --program $(PROGRAM)

test: $(STAMP)
	@$(PY) -m pytest -n 2 tests

bench: $(STAMP)
	@$(PY) -m benchmarks.bench_review

lint: $(STAMP)
	@$(PY) -m ruff check .

collaboration: $(STAMP)
	@test -n "$(NAME)" || { echo "usage: make collaboration NAME=<name> [FROM=banks]"; exit 2; }
	@$(PY) -m stacks.new_collaboration $(NAME) --from $(FROM)

clean:
	rm -rf $(VENV) out .pytest_cache
