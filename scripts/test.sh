#!/usr/bin/env bash
# Set up a fresh machine and run the test suite (the README's test command; .ci/run calls it).
# Default run (in parallel, see below): everything but tests marked slow, then the slow tests of the integrations CI must
# cover too: demo (the README's main job, quick), browser (a real nnictl experiment in NNI's web UI),
# postgres (4 Optuna workers on a real PostgreSQL server), kill (kill -9 of training in each phase,
# a latency-table build, an Optuna worker and NNI experiments, then resume). The nnictl end-to-end
# tests of NNI 3.0 workarounds 10 and 11 (marker nnictl; nnictl itself is covered by the browser and
# kill tests) run with `scripts/test.sh -m nnictl`: with them the CI run went past 20 minutes.
# Extra pytest arguments pass through instead, e.g. `scripts/test.sh -m slow` for every end-to-end run.
set -euo pipefail
cd "$(dirname "$0")/.."
# From the distribution's packages, where we may install: Chromium for the browser tests
# (tests/browser.py), PostgreSQL for the postgres tests (tests/postgres_server.py starts a throwaway server).
missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v initdb >/dev/null || compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(postgresql)
if [ ${#missing[@]} -gt 0 ] && command -v apt-get >/dev/null; then
    if [ "$(id -u)" -eq 0 ]; then as_root=(env); elif sudo -n true 2>/dev/null; then as_root=(sudo -n env); else as_root=(); fi
    if [ ${#as_root[@]} -gt 0 ]; then
        { "${as_root[@]}" DEBIAN_FRONTEND=noninteractive apt-get update -qq \
            && "${as_root[@]}" DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"; } >/dev/null \
            || echo "scripts/test.sh: could not install ${missing[*]}, which the browser/postgres tests need" >&2
    fi
fi
python3 -m venv .venv
.venv/bin/pip install --quiet --upgrade pip
.venv/bin/pip install --quiet -e '.[test]'
if [ $# -eq 0 ]; then
    # On every core (pytest-xdist; at most 4 workers): each test file runs in one worker, so a file's
    # module fixtures are built once. Tests are isolated (temporary directories, free ports, their own
    # NNI home), and subprocesses they start run with one thread.
    .venv/bin/python -m pytest -n auto --maxprocesses 4 --dist loadfile
    exec .venv/bin/python -m pytest -n auto --maxprocesses 4 --dist load -m "slow and (demo or browser or postgres or kill)"
fi
exec .venv/bin/python -m pytest "$@"
