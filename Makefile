# The two commands a reader needs: `make site` builds the book, `make test` checks it.
# Each sets itself up: the virtual environment is (re)made from requirements.txt
# whenever it is missing, older than that file, or made with another Python or
# TORCH (tools/install.py decides, and returns at once when nothing changed).

PYTHON ?= python3
# cpu: on Linux, torch alone from PyTorch's CPU-only index; cuda: PyPI's torch,
# on Linux a CUDA build of several GB. macOS and Windows get a CPU build either way.
TORCH ?= cpu
export NO_MKDOCS_2_WARNING := 1
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
NODE_INSTALLED := node_modules/.package-lock.json

.DEFAULT_GOAL := site
.PHONY: site pdf test serve snippets lint chapter clean lock node-checks lighthouse screenshots replicate bench FORCE

# FORCE: Make cannot see a change of Python or TORCH, so tools/install.py looks.
$(INSTALLED): requirements.txt FORCE
	@$(PYTHON) -m tools.install --torch "$(TORCH)"

FORCE:

## Run every snippet that changed (cached by content hash) into build/.
snippets: $(INSTALLED)
	$(BIN)/python -m tools.runner

## Build the site into site/ from the snippets' outputs.
site: snippets
	$(BIN)/python -m tools.build_site

## The whole book as one PDF, site/learned-kernels.pdf, printed from the site's
## one-page view (print_page/) by Debian's Chromium; the landing page links it.
pdf: site
	$(BIN)/python -m tools.pdf

## Live preview on http://127.0.0.1:8000/learned-kernels/; re-runs changed snippets.
serve: snippets
	$(BIN)/mkdocs serve

## ruff, ruff format --check, codespell and the book's rules (tools/lint_book.py).
## TODO placeholders are warnings for a contributor and errors in CI (CI=true).
LINT_FLAGS ?= $(if $(CI),--strict,)
lint: $(INSTALLED)
	$(BIN)/python -m tools.lint_book $(LINT_FLAGS)

## A new chapter from the templates: make chapter NAME=slug TITLE="Title"
## (read from the environment, so that any title survives the shell).
chapter: $(INSTALLED)
	$(BIN)/python -m tools.new_chapter "$(NAME)" "$$TITLE"

## Every check: lint, the built site, and the test suite (with the browser tests).
# Two processes, a test file each at a time, but the browser tests a page at a
# time (tests/conftest.py's scheduler).
test: lint site node-checks
	$(BIN)/python -m pytest --numprocesses 2 --dist loadfile

## The replication build: every snippet again with every seed it sets shifted by
## 100 (data splits included) into build/replicate/, every claim test against
## those results, then the claim ledger of both builds (tools/ledger.py).
replicate: $(INSTALLED)
	$(BIN)/python -m tools.runner --replicate
	$(BIN)/python -m pytest tests -m claim --results build/replicate/snippets \
	  --numprocesses 2 --dist loadfile
	$(BIN)/python -m tools.ledger

# axe-core and Lighthouse come from the npm registry (package-lock.json). Building
# the site needs no Node.js; where it is missing, the axe checks are skipped.
$(NODE_INSTALLED): package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

node-checks:
	@if command -v npm >/dev/null 2>&1; then \
	  $(MAKE) --no-print-directory $(NODE_INSTALLED); \
	else \
	  echo "Node.js and npm not found: the axe-core accessibility checks will be skipped."; \
	fi

## Lighthouse on every page (mobile, median of 3 runs): slow, so not in `make test`.
lighthouse: site
	@command -v npm >/dev/null 2>&1 || { echo "make lighthouse needs Node.js and npm"; exit 1; }
	@$(MAKE) --no-print-directory $(NODE_INSTALLED)
	$(BIN)/python -m tools.lighthouse

## Full-page screenshots to look at, of every page or of those named
## (make screenshots PAGES="04-layers/ explorer/"): desktop and phone width,
## light and dark, into build/screenshots/.
screenshots: site
	$(BIN)/python -m tools.screenshots $(PAGES)

## Time a cold and a warm `make site` and `make test` in a fresh clone of HEAD,
## and every snippet (slow: the whole book and suite run once more).
bench: $(INSTALLED)
	$(BIN)/python -m tools.bench --python $(PYTHON)

clean:
	rm -rf build site outputs .pytest_cache .ruff_cache

## Re-pin requirements.txt from requirements.in in a throwaway environment.
lock:
	rm -rf build/lock-venv
	$(PYTHON) -m venv build/lock-venv
	build/lock-venv/bin/pip install --quiet --disable-pip-version-check -r requirements.in
	{ echo '# Pinned by `make lock` from requirements.in; edit that file, not this one.'; \
	  build/lock-venv/bin/pip freeze | sed -e 's/^torch==\([0-9.]*\)+cpu/torch==\1/'; } \
	  > requirements.txt
	rm -rf build/lock-venv
