# The README's two commands: `make demo` (set up, then run the default job) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test install data

# A virtual environment with hwsearch installed editable; torch pinned to the CPU build.
$(BIN)/hwsearch: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[test]'
	touch $@

install: $(BIN)/hwsearch data

# Fashion-MNIST from Debian's dataset-fashion-mnist where apt exists (elsewhere hwsearch downloads it
# on first use when online, or --data-dir names a folder holding the four files).
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo "sudo -n")
data:
	@if command -v apt-get >/dev/null && ! dpkg -s dataset-fashion-mnist >/dev/null 2>&1; then \
	  $(SUDO) apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1 || \
	  { $(SUDO) apt-get update -qq >/dev/null 2>&1 && $(SUDO) apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1; } || \
	  echo "note: dataset-fashion-mnist not installed (needs root); hwsearch will look in --data-dir or download it"; fi

demo: install
	$(BIN)/hwsearch --target cortex-a76 --budget 10MB

test: install
	$(BIN)/python -m pytest -q
