# The README's two commands: `make serve` and `make test`. Each sets up what is missing first.
# `make check` runs the same checks without set-up, e.g. in the Docker image's test stage:
# `make check VENV_BIN=/opt/venv/bin`.
VENV_BIN ?= .venv/bin

.PHONY: setup serve test check lint typecheck pytest

setup:
	@scripts/bootstrap.sh

serve: setup
	$(VENV_BIN)/nogil-bench serve

test: setup check

check: lint typecheck pytest

lint:
	$(VENV_BIN)/ruff check .
	$(VENV_BIN)/ruff format --check .

typecheck:
	$(VENV_BIN)/mypy

# The suite runs on the same free-threaded build with the GIL off (its default), then forced on
# for what can behave differently with it (the gil_sensitive marker, tests/conftest.py). Tests
# run PYTEST_WORKERS at a time (pytest-xdist): most of their time is spent waiting on servers
# and worker processes, not on the CPU.
PYTEST_WORKERS ?= auto
# --durations=10: every run names its ten slowest tests, so a slow one is seen where it lands.
PYTEST_PARALLEL = -n $(PYTEST_WORKERS) --dist worksteal --durations=10

pytest:
	$(VENV_BIN)/pytest $(PYTEST_PARALLEL)
	PYTHON_GIL=1 $(VENV_BIN)/pytest $(PYTEST_PARALLEL) -m gil_sensitive
