"""syncd against peers, same machine, same run: ``python -m bench.peers`` (``--quick`` for a short check).

The peers (procrastinate, dlt, pandas + SQLAlchemy) are not syncd dependencies: ``bench/peers/setup.sh``
installs them into ``.venv-peers`` (see ``bench/peers/requirements.txt``); run the benchmark with
``.venv-peers/bin/python -m bench.peers``. A peer whose package is missing is reported as "not installed".
"""
