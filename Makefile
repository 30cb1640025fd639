# make run   : install into .venv, then run the embedded demo end to end (results/tables.csv)
# make lint  : install into .venv, then ruff and `snakemake --lint`; fails on any finding
# make test  : install into .venv, then lint, then run the test suite
# make bench : install into .venv, then the four speed benches (tables; JSON under results/bench/)
# make fuzz  : install into .venv, then the property-based suites with the long hypothesis profile (minutes;
#              `make test` runs them with the bounded default profile)
VENV ?= .venv
PY := $(VENV)/bin/python
CORES ?= all
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: install run lint test fuzz bench report clean

install: $(VENV)/.installed

$(VENV)/.installed: requirements.txt pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	touch $@

run: install
	snakemake --cores $(CORES) results/tables.csv

report: run
	snakemake --report report.html

# snakemake --lint exits 1 when it prints a finding (and when the workflow does not load)
lint: install
	ruff check .
	snakemake --lint

test: lint
	$(PY) -m pytest -q --durations=15

fuzz: install
	SOUNDBENCH_FUZZ=long $(PY) -m pytest -q tests/test_fuzz_*.py

bench: install
	soundbench bench all

clean:
	rm -rf results resources logs benchmarks checkpoints .snakemake report.html
