"""Process-wide settings that ``import ofa_nni`` makes (see ofa_nni/__init__.py for why)."""

from __future__ import annotations

import os
import subprocess
import sys


def _wait_policy_after_import(environment: dict[str, str]) -> str:
    script = "import os, ofa_nni; print(os.environ.get('OMP_WAIT_POLICY'))"
    result = subprocess.run([sys.executable, "-c", script], env=environment, capture_output=True, text=True,
                            check=True, timeout=120)
    return result.stdout.strip()


def test_openmp_threads_wait_passively_unless_the_user_chose():
    environment = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    assert _wait_policy_after_import(environment) == "PASSIVE"
    assert _wait_policy_after_import({**environment, "OMP_WAIT_POLICY": "ACTIVE"}) == "ACTIVE"
