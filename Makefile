.PHONY: install test unit lint fmt ci

install:  ## install syncd and its development tools
	python -m pip install -e '.[dev]'

test:  ## the whole test suite (starts a throw-away PostgreSQL by itself)
	python -m pytest

unit:  ## pure tests only
	python -m pytest -m unit

lint:  ## ruff and mypy, as CI runs them
	ruff check syncd tests bench
	ruff format --check syncd tests bench
	mypy

fmt:  ## format the code
	ruff format syncd tests bench
	ruff check --fix syncd tests bench

ci:  ## exactly what CI runs
	bash .ci/run
