"""Security audit of the packages, read from their syntax trees (not grepped as text).

* Files from users (checkpoints, supernets, predictors) are never unpickled as arbitrary objects:
  every ``torch.load`` passes ``weights_only=True``, ``np.load`` never ``allow_pickle=True``, no
  ``pickle``/``marshal``/``shelve`` loads, ``yaml.load`` only with a ``yaml.SafeLoader`` subclass.
* No shell strings: no ``shell=True``, no ``os.system``/``os.popen``/``os.exec*``, a subprocess's
  command is a list (never a string that user input could be spliced into), no ``eval``/``exec``.

``benchmarks/results/fuzzing.md`` lists the call sites found and why each is safe.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("ofa_nni", "search_spaces", "strategies")
SUBPROCESS_CALLS = {"run", "Popen", "call", "check_call", "check_output", "getoutput", "getstatusoutput"}


def _sources() -> list[Path]:
    return sorted(path for package in PACKAGES for path in (REPO / package).rglob("*.py"))


def _dotted(node: ast.AST) -> str:
    """``torch.load`` for ``torch.load``, ``np.lib.npyio.load`` likewise; '' for anything else."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return f"{base}.{node.attr}" if base else ""
    return ""


def _calls(path: Path) -> list[tuple[str, ast.Call]]:
    """(dotted name of the callee, call) for every call in ``path``, with ``from x import y`` names
    spelled ``x.y``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    imported: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                imported[alias.asname or alias.name] = f"{node.module}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                imported[alias.asname or alias.name] = alias.name
    result = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            name = _dotted(node.func)
            head, _, rest = name.partition(".")
            if head in imported:
                name = imported[head] + (f".{rest}" if rest else "")
            result.append((name, node))
    return result


def _keyword(call: ast.Call, name: str) -> ast.expr | None:
    return next((keyword.value for keyword in call.keywords if keyword.arg == name), None)


def _is_constant(node: ast.expr | None, value: object) -> bool:
    return isinstance(node, ast.Constant) and node.value is value


ALL_CALLS = [(path, name, call) for path in _sources() for name, call in _calls(path)]


def _where(path: Path, call: ast.Call) -> str:
    return f"{path.relative_to(REPO)}:{call.lineno}"


def test_torch_load_is_always_weights_only() -> None:
    sites = [(path, call) for path, name, call in ALL_CALLS if name == "torch.load"]
    assert sites, "no torch.load found: the audit would be vacuous"
    unsafe = [_where(path, call) for path, call in sites if not _is_constant(_keyword(call, "weights_only"), True)]
    assert unsafe == [], f"torch.load without weights_only=True at {unsafe}"


def test_no_pickle_loading() -> None:
    numpy_loads = [(path, call) for path, name, call in ALL_CALLS if name in ("numpy.load", "np.load")]
    assert numpy_loads, "no np.load found: the audit would be vacuous"
    assert [_where(p, c) for p, c in numpy_loads if not _is_constant(_keyword(c, "allow_pickle"), False)
            and _keyword(c, "allow_pickle") is not None] == []
    forbidden = ("pickle.load", "pickle.loads", "pickle.Unpickler", "marshal.load", "marshal.loads", "shelve.open",
                 "dill.load", "dill.loads", "joblib.load", "yaml.unsafe_load", "yaml.full_load", "torch.jit.load")
    found = [f"{name} at {_where(path, call)}" for path, name, call in ALL_CALLS
             if name in forbidden and (str(path.relative_to(REPO)), name) not in REVIEWED]
    assert found == []


REVIEWED = {
    # export_subnet reloads the TorchScript file it has just written, to check the exported model's
    # outputs against the subnet's; it never loads a file it did not write.
    ("ofa_nni/export.py", "torch.jit.load"),
}
"""Loads of code-carrying formats that were reviewed: (file, call)."""


def test_yaml_load_uses_a_safe_loader() -> None:
    for path, name, call in ALL_CALLS:
        if name != "yaml.load":
            continue
        loader = _keyword(call, "Loader") or (call.args[1] if len(call.args) > 1 else None)
        assert isinstance(loader, ast.Name), f"yaml.load without a named Loader at {_where(path, call)}"
        module = importlib.import_module(".".join(path.relative_to(REPO).with_suffix("").parts))
        assert issubclass(getattr(module, loader.id), yaml.SafeLoader), _where(path, call)


def test_no_shell_strings() -> None:
    subprocess_sites = [(path, name, call) for path, name, call in ALL_CALLS
                        if name.startswith("subprocess.") and name.split(".", 1)[1] in SUBPROCESS_CALLS]
    assert subprocess_sites, "no subprocess call found: the audit would be vacuous"
    for path, name, call in subprocess_sites:
        assert not _is_constant(_keyword(call, "shell"), True), f"shell=True at {_where(path, call)}"
        assert name not in ("subprocess.getoutput", "subprocess.getstatusoutput"), _where(path, call)
        command = call.args[0] if call.args else _keyword(call, "args")
        assert isinstance(command, (ast.List, ast.Tuple, ast.Name)), f"{name} with a command string at " \
                                                                    f"{_where(path, call)}"
        if isinstance(command, ast.Name):  # a name: it must be bound to a list literal in the same function
            assignments = [node for node in ast.walk(ast.parse(path.read_text()))
                           if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == command.id
                                                                   for t in node.targets)]
            assert assignments and all(isinstance(a.value, ast.List) for a in assignments), _where(path, call)
    shells = ("os.system", "os.popen", "os.execv", "os.execvp", "os.execl", "os.execlp", "os.spawnl", "os.spawnv",
              "eval", "exec", "compile")
    found = [f"{name} at {_where(path, call)}" for path, name, call in ALL_CALLS if name in shells]
    assert found == []


@pytest.mark.parametrize("source", ["import torch\ntorch.load('x')\n",
                                    "from torch import load\nload('x', weights_only=False)\n"])
def test_the_audit_catches_an_unsafe_load(source: str, tmp_path: Path) -> None:
    """The checks above can fail: an unsafe load in a file is found."""
    path = tmp_path / "module.py"
    path.write_text(source)
    (call,) = [call for name, call in _calls(path) if name == "torch.load"]
    assert not _is_constant(_keyword(call, "weights_only"), True)
