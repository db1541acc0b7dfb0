# Set-up and everyday targets. Every target that runs code creates the virtual
# environment first, so `make sample` and `make test` work on a fresh clone.

PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
CONSTRAINTS := requirements/constraints.txt
INSTALLED := $(VENV)/.installed
PIPELINE ?= pipelines/sample.toml
DUMP ?=
INDEX ?=
OUT ?= runs/queries
QUERY_ARGS ?=

.PHONY: install sample run test queries report clean

install: $(INSTALLED)

$(INSTALLED): setup.cfg pyproject.toml $(CONSTRAINTS)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --constraint $(CONSTRAINTS) --editable '.[dev]'
	touch $@

sample: install
	$(BIN)/wit run pipelines/sample.toml

run: install
	$(BIN)/wit run $(PIPELINE)

test: install
	$(BIN)/pytest

queries: install
	@test -n "$(DUMP)" || { echo "usage: make queries DUMP=path/to/pages-articles.xml.bz2 [INDEX=multistream-index.txt.bz2] [OUT=folder] [QUERY_ARGS='--wordnet auto']"; exit 2; }
	$(BIN)/wit queries build $(DUMP) --out $(OUT) $(if $(INDEX),--index $(INDEX)) $(QUERY_ARGS)

clean:
	rm -rf runs build *.egg-info
