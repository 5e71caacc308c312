#!/usr/bin/env bash
# Set up a fresh machine and run the test suite (the README's test command; .ci/run calls it).
# Default run: everything but tests marked slow, then the slow browser tests (a real nnictl
# experiment in NNI's web UI), which CI runs too. Extra pytest arguments pass through instead,
# e.g. `scripts/test.sh -m slow` for the end-to-end runs.
set -euo pipefail
cd "$(dirname "$0")/.."
# Chromium for the browser tests (tests/browser.py), from the distribution's packages, where we may install.
if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null; then
    if [ "$(id -u)" -eq 0 ]; then as_root=(env); elif sudo -n true 2>/dev/null; then as_root=(sudo -n env); else as_root=(); fi
    if [ ${#as_root[@]} -gt 0 ]; then
        { "${as_root[@]}" DEBIAN_FRONTEND=noninteractive apt-get update -qq \
            && "${as_root[@]}" DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } >/dev/null \
            || echo "scripts/test.sh: could not install chromium, which the browser tests need" >&2
    fi
fi
python3 -m venv .venv
.venv/bin/pip install --quiet --upgrade pip
.venv/bin/pip install --quiet -e '.[test]'
if [ $# -eq 0 ]; then
    .venv/bin/python -m pytest
    exec .venv/bin/python -m pytest -m "browser and slow"
fi
exec .venv/bin/python -m pytest "$@"
