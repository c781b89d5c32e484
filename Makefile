# The README's two commands: `make demo` (set up, then run the default job) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test install

# A virtual environment with hwsearch installed editable; torch pinned to the CPU build.
$(BIN)/hwsearch: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[test]'
	touch $@

install: $(BIN)/hwsearch

demo: install
	$(BIN)/hwsearch --target cortex-a76 --budget 10MB

test: install
	$(BIN)/python -m pytest -q
