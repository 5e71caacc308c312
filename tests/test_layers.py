"""The layering (issue 12): the light core imports no heavy library, and the import-linter
contracts in pyproject.toml hold (a wrong-way import fails here, and so in CI)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "nni", "pytorch_lightning", "lightning", "optuna")


def _python(code: str, *, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)


def test_the_light_core_loads_no_heavy_library() -> None:
    """The arch description, the costs, the search, the ridge surrogate and the plots need numpy only
    (a fresh interpreter; matplotlib loads when a plot is drawn)."""
    done = _python(
        "import sys; import ofa_nni.arch, ofa_nni.search, ofa_nni.costs, ofa_nni.ridge, ofa_nni.plots; "
        "from ofa_nni.search import EvolutionSearch, EvolutionSettings, ParetoSearch, specialize; "
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r})))"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]", f"the light core loaded {done.stdout.strip()}"


_LINT = "import sys; from importlinter.cli import lint_imports; sys.exit(lint_imports({args}))"


def test_import_contracts_are_kept() -> None:
    done = _python(_LINT.format(args="no_cache=True"))
    assert done.returncode == 0, f"import-linter reports a broken contract:\n{done.stdout}\n{done.stderr}"
    assert "broken" in done.stdout and " 0 broken" in done.stdout


def test_a_broken_contract_fails(tmp_path: Path) -> None:
    """The check above can fail: a contract the tree breaks (the search imports numpy) is reported."""
    config = tmp_path / "broken.ini"
    config.write_text(
        "[importlinter]\nroot_packages =\n    ofa_nni\ninclude_external_packages = True\n\n"
        "[importlinter:contract:numpy]\nname = The search imports no numpy\ntype = forbidden\n"
        "source_modules =\n    ofa_nni.search\nforbidden_modules =\n    numpy\n"
    )
    done = _python(_LINT.format(args=f"config_filename={str(config)!r}, no_cache=True"))
    assert done.returncode != 0
    assert "BROKEN" in done.stdout and "ofa_nni.search" in done.stdout


def test_every_core_module_is_under_the_core_contract() -> None:
    """The "core imports nothing above it" contract lists the core's modules (import-linter cannot
    say "ofa_nni but not ofa_nni.app"): a new core module left off the list would go unchecked."""
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    listed = next(c for c in config if c["name"] == "The core imports nothing above it")["source_modules"]
    application = {"app", "cli", "__init__"}
    core = {path.stem if path.is_file() else path.name for path in (ROOT / "ofa_nni").iterdir()
            if (path.suffix == ".py" or (path / "__init__.py").is_file()) and path.stem not in application}
    assert sorted(f"ofa_nni.{name}" for name in core) == sorted(listed)
