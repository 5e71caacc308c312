"""Process-wide settings: the command line sets them where it starts; importing the core sets nothing."""

from __future__ import annotations

import os
import subprocess
import sys


def _python(script: str, environment: dict[str, str] | None = None) -> str:
    result = subprocess.run([sys.executable, "-c", script], env=environment, capture_output=True, text=True,
                            check=True, timeout=120)
    return result.stdout.strip()


def test_the_command_line_makes_openmp_threads_wait_passively_unless_the_user_chose():
    # Why: see ofa_nni/app/cli.py (spinning OpenMP waits cost 10-40x on a busy 2-core machine).
    script = "import os, ofa_nni.cli; print(os.environ.get('OMP_WAIT_POLICY'))"
    environment = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    assert _python(script, environment) == "PASSIVE"
    assert _python(script, {**environment, "OMP_WAIT_POLICY": "ACTIVE"}) == "ACTIVE"


def test_importing_the_core_changes_no_process_setting():
    environment = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    # No environment variable set and no NNI patch applied (the patches need NNI imported).
    script = ("import os, sys, ofa_nni, ofa_nni.arch, ofa_nni.search, ofa_nni.costs; "
              "print(os.environ.get('OMP_WAIT_POLICY'), 'nni' in sys.modules)")
    assert _python(script, environment) == "None False"


def test_cli_help_loads_neither_torch_nor_nni():
    # `ofa-nni --help` (and the parsers of every command) must stay instant: heavy modules load
    # only when a command runs.
    script = ("import sys, contextlib, io\nfrom ofa_nni.app.cli import main\n"
              "with contextlib.redirect_stdout(io.StringIO()):\n"
              "    try:\n        main(['--help'])\n    except SystemExit:\n        pass\n"
              "print(sorted(m for m in ('torch', 'nni', 'pytorch_lightning', 'optuna') if m in sys.modules))")
    assert _python(script) == "[]"
