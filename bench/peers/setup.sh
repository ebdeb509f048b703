#!/bin/sh
# Creates .venv-peers (at the repository root) holding the peers of `python -m bench.peers`.
#
# --system-site-packages: syncd itself (editable, with its dev extras: asyncpg, the embedded
# PostgreSQL, ...) comes from the interpreter that runs the test suite, so the benchmark measures
# exactly the checkout; only the peers (bench/peers/requirements.txt) go into the venv, never into
# the project's environment or pyproject.toml. Takes ~1 min with a reachable PyPI.
set -eu
cd "$(dirname "$0")/../.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv-peers/bin/python ]; then
    "$PYTHON" -m venv --system-site-packages .venv-peers
fi
printf '*\n' > .venv-peers/.gitignore  # keep the venv out of git without touching .gitignore
.venv-peers/bin/pip install -q -r bench/peers/requirements.txt
.venv-peers/bin/python -c "import syncd, procrastinate, dlt, pandas, sqlalchemy" \
    && echo "ready: .venv-peers/bin/python -m bench.peers [--quick]"
