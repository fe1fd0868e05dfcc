# Two commands do all set-up on a fresh machine (python3 + pip): `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test install benchmark clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e ".[dev,notebooks]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) scripts/demo.py

# Unit tests and every notebook (smoke mode, set in conftest.py) in one pytest run.
test: $(STAMP)
	$(PY) -m pytest -q --nbmake tests notebooks

benchmark: $(STAMP)
	$(PY) scripts/benchmark.py all

clean:
	rm -rf outputs .pytest_cache
