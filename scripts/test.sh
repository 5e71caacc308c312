#!/usr/bin/env bash
# Set up a fresh machine and run the test suite (the README's test command; .ci/run calls it).
# Default run: everything but tests marked slow. Extra pytest arguments pass through,
# e.g. `scripts/test.sh -m slow` for the end-to-end runs.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/pip install --quiet --upgrade pip
.venv/bin/pip install --quiet -e '.[test]'
exec .venv/bin/python -m pytest "$@"
