# The README's commands. Each target sets up what it needs in .venv.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# What ruff checks, here, in make test (CI) and in .pre-commit-config.yaml.
LINTED := tf_crnn tests benchmarks hlp docs/hooks.py docs/screenshots.py training.py

.PHONY: demo test test-fast lint install install-dev browser clean docs

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

install: $(BIN)/python
	@echo "Installing tf_crnn with TensorFlow into $(VENV): about 1 GB on a fresh machine, pip shows its progress"
	$(BIN)/python -m pip install --progress-bar on -e ".[all]"

install-dev: $(BIN)/python $(VENV)/schemas/page.xsd $(VENV)/schemas/xlink.xsd
	@echo "Installing tf_crnn with TensorFlow and the test tools into $(VENV): about 1 GB on a fresh machine"
	$(BIN)/python -m pip install --progress-bar on -e ".[dev]"

# The PAGE 2019 schema the tests validate against, as the OCR-D validators ship it (the
# package itself is not installed: its dependencies are a server stack).
$(VENV)/schemas/page.xsd: $(BIN)/python
	$(BIN)/python -m pip download --quiet --no-deps --dest $(VENV)/schemas ocrd==3.13.3
	$(BIN)/python -c "import sys, zipfile, glob; zipfile.ZipFile(glob.glob(sys.argv[1] + '/ocrd-*.whl')[0]).extract('ocrd_validators/page.xsd', sys.argv[1])" $(VENV)/schemas
	mv $(VENV)/schemas/ocrd_validators/page.xsd $@

# The XLink schema that ALTO's (tests/schemas/alto-4-2.xsd) imports, from the same wheel.
$(VENV)/schemas/xlink.xsd: $(VENV)/schemas/page.xsd
	$(BIN)/python -c "import sys, zipfile, glob; zipfile.ZipFile(glob.glob(sys.argv[1] + '/ocrd-*.whl')[0]).extract('ocrd_validators/xlink.xsd', sys.argv[1])" $(VENV)/schemas
	mv $(VENV)/schemas/ocrd_validators/xlink.xsd $@

# Debian's chromium and its driver, for the browser test of tf-crnn serve (skipped without them)
# and docs/screenshots.py: installed with apt-get where this runs as root, else named for you.
browser:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "Installing Debian's chromium and chromium-driver for the browser test"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null; \
	else echo "No chromium/chromedriver: the browser test is skipped (apt-get install chromium chromium-driver)"; fi

## make demo: synthetic lines -> train -> evaluate -> predict -> export (a few minutes on 2 CPU cores)
demo: install
	$(BIN)/tf-crnn demo --output-dir demo_output

## make test: install with dev dependencies, lint (ruff), and run the whole test suite, one process per core
# (pip and apt-get, both mostly downloads, run side by side; then the installed files are written
# out, so that the tests' own fsyncs do not wait for a gigabyte of them)
test:
	@$(MAKE) --no-print-directory -j2 install-dev browser
	@sync
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)
	TF_CPP_MIN_LOG_LEVEL=2 $(BIN)/python -m pytest -q -n auto --durations=10

## make test-fast: the daily loop, without the tests marked slow (about a minute on 2 cores)
test-fast: install-dev
	TF_CPP_MIN_LOG_LEVEL=2 $(BIN)/python -m pytest -q -n auto -m "not slow"

## make lint: ruff's checks and formatting, as make test runs them first
lint: install-dev
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)

clean:
	rm -rf demo_output .pytest_cache build *.egg-info

## make docs: the documentation site into site/ (warnings are errors)
docs: install-dev
	$(BIN)/mkdocs build --strict --site-dir site
