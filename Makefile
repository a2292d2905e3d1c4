# `make test` and `make demo` are the two commands a fresh machine needs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

DOCS_STAMP := $(VENV)/.docs-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: test demo lint bench docs install clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,lint]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

# The docs need only the package and the `docs` extra, so a fresh clone builds them
# without the test set-up.
$(DOCS_STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e '.[docs]'
	rm -f $(VENV)/.docs-*
	touch $(DOCS_STAMP)

# Warnings are errors; --keep-going lists all of them before failing.
docs: $(DOCS_STAMP)
	$(BIN)/sphinx-build -W --keep-going -q -b html docs docs/_build/html
	@echo "The docs are in docs/_build/html/index.html"

# tests/oscar is a django-oscar shop with settings of its own, so a pytest process of
# its own; its tables come from the models (Oscar's migrations alone take 20 s).
OSCAR_TESTS := tests/oscar --ds=tests.oscar.settings --no-migrations

# Coverage starts before pytest so the package imported by the pytest11 entry
# point (the pjpixel_api fixture) is measured from its first line.
test: $(STAMP)
	bash .ci/system-deps
	rm -f .coverage .coverage.*
	$(BIN)/coverage run -m pytest $(PYTEST_ARGS)
	$(BIN)/coverage run -m pytest $(OSCAR_TESTS) $(OSCAR_PYTEST_ARGS)
	$(BIN)/coverage combine -q
	$(BIN)/coverage report --fail-under=95

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

demo: $(STAMP)
	@if [ -f example_project/manage.py ]; then \
		$(BIN)/python example_project/run_demo.py; \
	else \
		echo "make demo: the example shop is not written yet (see the open issue)."; \
	fi

bench: $(STAMP)
	@if [ -d benchmarks ]; then $(BIN)/python -m benchmarks; else echo "make bench: no benchmarks yet."; fi

clean:
	rm -rf $(VENV) docs/_build .tox .coverage .coverage.* .mypy_cache .ruff_cache .hypothesis
