# Two commands do all set-up on a fresh machine (python3 + pip): `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PIP    := -m pip install --quiet --disable-pip-version-check

.PHONY: demo test lint install lock benchmark clean

# constraints.txt pins every package to the versions `make test` was verified with (pyproject keeps ranges
# for people installing featlib into their own environment); `make lock` refreshes it.
$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) $(PIP) -c constraints.txt -e ".[dev,notebooks]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) scripts/demo.py

lint: $(STAMP)
	$(VENV)/bin/ruff check featlib scripts tests notebooks conftest.py

# Lint, then unit tests and every notebook (smoke mode, set in conftest.py) in one pytest run.
test: lint
	$(PY) -m pytest -q --nbmake tests notebooks

# Resolve pyproject's ranges afresh in a throw-away venv and pin the result (torch keeps its public version:
# the +cpu local label is this machine's wheel, and `==2.13.0` matches it and the CUDA build alike).
lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python $(PIP) -e ".[dev,notebooks]"
	( echo "# pip constraints: the versions \`make test\` was verified with. Refresh: make lock"; \
	  .lock-venv/bin/python -m pip freeze --exclude-editable | sed -E 's/^(torch==[^+]+)\+.*/\1/' ) > constraints.txt
	rm -rf .lock-venv

benchmark: $(STAMP)
	$(PY) scripts/benchmark.py all

clean:
	rm -rf outputs .pytest_cache
