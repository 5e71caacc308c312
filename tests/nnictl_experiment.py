"""The example nnictl experiment (examples/nni/config.yml) run in isolation, for the tests that need
a real one: tests/test_nni_tuner.py checks it through the REST API, tests/test_web_uis.py in NNI's
web UI.

Isolation: NNI's registrations (``NNI_CONFIG_DIR``), ``HOME`` and the experiment records stay under
the test's temporary directory, and the REST server gets a free port. The experiment is started with
``ofa-nni nni create``, which binds NNI's manager to 127.0.0.1; the helper checks that it does.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ofa_nni.nni_search_space import arch_space_from_spec

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "nni"

# The space of the supernet trained below: the cpu preset narrowed to 2 choices per dimension.
TINY_SPEC: dict[str, Any] = {
    "preset": "cpu", "kernel_sizes": [3, 5], "expand_ratios": [2, 3], "depths": [1, 2], "resolutions": [24, 32],
    "num_classes": 10,
}
TINY = arch_space_from_spec(TINY_SPEC)
TINY_PROXYLESS_SPEC: dict[str, Any] = {**TINY_SPEC, "name": "ofa-proxyless"}
"""The same choices in OFA-ProxylessNAS's cpu preset."""
NNICTL = "nni.tools.nnictl.nnictl"


def train_tiny_supernet(run_dir: Path, spec: dict[str, Any] = TINY_SPEC) -> Path:
    """A supernet of ``spec`` (default TINY) trained briefly on digits (the sandwich rule, a few
    steps); its path."""
    from ofa_nni.app.runner import train
    from ofa_nni.training import load_config

    config = load_config({
        "seed": 0,
        "space": {key: value for key, value in spec.items() if key != "num_classes"},
        "data": {"kind": "digits", "batch_size": 64},
        "strategy": {"name": "sandwich", "epochs": 1, "num_random": 1},
        "validation": {"random_subnets": 0, "calibration_batches": 1},
        "trainer": {"progress_bar": False, "loggers": [], "limit_train_batches": 8, "limit_val_batches": 1},
    })
    return Path(train(config, run_dir=run_dir).supernet_path)


QUICK_TRIAL = """
import time

import nni

parameters = nni.get_next_parameter()
time.sleep(2)
nni.report_final_result(float(sum(value for value in parameters.values())))
"""
"""A trial without torch: a metric from the parameters in about 3 seconds."""


def quick_experiment_config(root: Path, tuner: dict[str, Any], search_space: dict[str, Any], *, trials: int,
                            concurrency: int = 1, trial: str = QUICK_TRIAL) -> Path:
    """config.yml of a local HPO experiment, ``concurrency`` trials at a time, each ``trial`` (Python code)."""
    code = root / "code"
    code.mkdir(parents=True, exist_ok=True)
    (code / "trial.py").write_text(trial)
    (code / "search_space.json").write_text(json.dumps(search_space))
    config = {
        "experimentName": "quick",
        "searchSpaceFile": str(code / "search_space.json"),
        "trialCodeDirectory": str(code),
        "trialCommand": f"{sys.executable} trial.py",
        "trialConcurrency": concurrency,
        "maxTrialNumber": trials,
        "tuner": tuner,
        "trainingService": {"platform": "local"},
        "experimentWorkingDirectory": str(root / "experiments"),
    }
    path = root / "config.yml"
    path.write_text(yaml.safe_dump(config))
    return path


TUNER_TRIAL = """
import json, time

import nni

from ofa_nni.nni_search_space import arch_space_from_spec
from strategies.nni_tuner import canonical_arch

# A later-started trial that asks for its parameters before an earlier one (what a slower import of
# torch makes happen at random) is what NNI 3.0's local training service answered with the earlier
# trial's parameters: every other trial waits before asking.
time.sleep(3.0 if nni.get_sequence_id() % 2 == 0 else 0.0)
parameters = nni.get_next_parameter()
arch = canonical_arch(arch_space_from_spec(json.loads({spec!r})), parameters)
time.sleep(1.0)
nni.report_final_result({{"default": 0.5, "arch": arch}})
"""
"""A trial of :data:`TINY` without torch: reports the canonical arch of the parameters it got."""


def ofa_tuner_config(root: Path, class_args: dict[str, Any], search_space: dict[str, Any], *, trials: int,
                     concurrency: int) -> Path:
    """config.yml of a local experiment of OFAEvolutionTuner (loaded from this repository, no
    registration needed) with ``class_args`` over :data:`TINY_SPEC`, each trial :data:`TUNER_TRIAL`."""
    tuner = {"className": "strategies.nni_tuner.OFAEvolutionTuner", "codeDirectory": str(REPO),
             "classArgs": {"space": TINY_SPEC, **class_args}}
    return quick_experiment_config(root, tuner, search_space, trials=trials, concurrency=concurrency,
                                   trial=TUNER_TRIAL.format(spec=json.dumps(TINY_SPEC)))


@contextmanager
def created_experiment(root: Path, config: Path, *, bound: bool = True) -> Iterator[tuple[int, str]]:
    """``ofa-nni nni create`` (``bound``) or plain ``nnictl create`` of ``config``; yields the REST port
    and create's output, then stops the experiment."""
    env = nni_environment(root)
    port = free_port()
    created = nnictl(env, "create", "--config", str(config), "--port", str(port), bound=bound)
    assert created.returncode == 0, created.stdout + created.stderr
    try:
        yield port, created.stdout + created.stderr
    finally:
        nnictl(env, "stop", "--port", str(port), bound=False)


def nni_environment(root: Path) -> dict[str, str]:
    """An environment whose NNI registrations and experiment records stay under ``root``."""
    env = dict(os.environ)
    env.update(
        HOME=str(root / "home"),
        NNI_CONFIG_DIR=str(root / "nni-config"),
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        OMP_NUM_THREADS="1",
        PYTHONUNBUFFERED="1",
    )
    (root / "home").mkdir(parents=True, exist_ok=True)
    return env


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def listening_addresses(port: int) -> set[str]:
    """The local addresses on which some process listens on TCP ``port`` (``ss -ltn``, via psutil)."""
    import psutil

    return {
        c.laddr.ip for c in psutil.net_connections("tcp") if c.status == psutil.CONN_LISTEN and c.laddr.port == port
    }


def kill_manager(port: int) -> int:
    """``kill -9`` the NNI manager (node) serving ``port``; its pid."""
    import psutil

    (pid,) = {c.pid for c in psutil.net_connections("tcp") if c.status == psutil.CONN_LISTEN and c.laddr.port == port}
    os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(psutil.NoSuchProcess):
        psutil.Process(pid).wait(timeout=30)
    return int(pid)


def nnictl(env: dict[str, str], *arguments: str, bound: bool = True) -> subprocess.CompletedProcess[str]:
    """``ofa-nni nni ARGS`` (``bound``: create/resume/view with the manager on 127.0.0.1) or plain ``nnictl ARGS``."""
    command = [sys.executable, "-m", "ofa_nni.cli", "nni"] if bound else [sys.executable, "-m", NNICTL]
    return subprocess.run([*command, *arguments], env=env, capture_output=True, text=True, timeout=300)


def wait_for_status(port: int, statuses: tuple[str, ...], *, timeout: float) -> dict[str, Any]:
    """Poll ``check-status`` until the experiment's status is one of ``statuses``; the last status."""
    deadline = time.monotonic() + timeout
    while True:
        status: dict[str, Any] = rest_get(port, "check-status")
        if status["status"] in statuses or time.monotonic() > deadline:
            return status
        time.sleep(1)


def rest_get(port: int, path: str) -> Any:
    """``GET /api/v1/nni/<path>`` of the experiment's REST server (what the web UI reads)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/nni/{path}", timeout=10) as response:
        return json.loads(response.read())


def final_metric(job: dict[str, Any]) -> dict[str, Any]:
    """A trial job's final metric dict (NNI stores the metric JSON as a JSON string)."""
    (final,) = job["finalMetricData"]
    return dict(json.loads(json.loads(final["data"])))


@dataclass
class FinishedExperiment:
    """An experiment that reached DONE, still served on ``port`` inside :func:`example_experiment`."""

    port: int
    config: dict[str, Any]
    jobs: list[dict[str, Any]]
    experiment: dict[str, Any]
    log_dir: Path
    seconds: float  # from nnictl create to DONE


def example_config(supernet: Path, root: Path, *, trials: int, population: int,
                   spec: dict[str, Any] = TINY_SPEC) -> tuple[Path, dict[str, Any]]:
    """The example config, unchanged but for the locations, sizes and space (``classArgs``' ``space``:
    ``spec``, the supernet's), written to ``root/config.yml``
    next to a copy of ``supernet`` and the generated search space, the tuner registered (in
    ``root``'s NNI config directory); its path and content."""
    env = nni_environment(root)
    code_dir = root / "code"
    (code_dir / "runs" / "digits").mkdir(parents=True)
    shutil.copy(supernet, code_dir / "runs" / "digits" / "supernet.pt")
    config = yaml.safe_load((EXAMPLE / "config.yml").read_text())
    assert "--supernet runs/digits/supernet.pt" in config["trialCommand"]  # the path the copy above mirrors
    config.update(
        searchSpaceFile=str(code_dir / "search_space.json"),
        trialCodeDirectory=str(code_dir),
        maxTrialNumber=trials,
        experimentWorkingDirectory=str(root / "experiments"),
    )
    config["tuner"]["classArgs"].update(space=spec, population_size=population)
    config_path = root / "config.yml"
    config_path.write_text(yaml.safe_dump(config))
    cli = [sys.executable, "-m", "ofa_nni.cli", "nni"]
    subprocess.run([*cli, "register"], env=env, check=True, capture_output=True, timeout=120)
    subprocess.run([*cli, "search-space", "--supernet", "runs/digits/supernet.pt", "--out", "search_space.json"],
                   env=env, cwd=code_dir, check=True, capture_output=True, timeout=120)
    return config_path, config


@contextmanager
def example_experiment(supernet: Path, root: Path, *, trials: int, population: int, timeout: float = 420.0,
                       spec: dict[str, Any] = TINY_SPEC) -> Iterator[FinishedExperiment]:
    """Run the example config, unchanged but for the locations and sizes, under ``nnictl create``
    until it is DONE; yields it while NNI still serves it, then ``nnictl stop``."""
    env = nni_environment(root)
    config_path, config = example_config(supernet, root, trials=trials, population=population, spec=spec)
    cli = [sys.executable, "-m", "ofa_nni.cli", "nni"]
    port = free_port()
    started = time.monotonic()
    # nnictl create with NNI's manager bound to 127.0.0.1 (plain nnictl binds every interface).
    created = subprocess.run([*cli, "create", "--config", str(config_path), "--port", str(port)], env=env,
                             capture_output=True, text=True, timeout=180)
    assert created.returncode == 0, created.stdout + created.stderr
    try:
        assert listening_addresses(port) == {"127.0.0.1"}, f"NNI's REST server listens on {listening_addresses(port)}"
        status: dict[str, Any] = {}
        while time.monotonic() - started < timeout:
            status = rest_get(port, "check-status")
            if status["status"] in ("DONE", "ERROR", "STOPPED"):  # TUNER_NO_MORE_TRIAL: owed trials wait
                break
            time.sleep(3)
        assert status.get("status") == "DONE", status
        seconds = time.monotonic() - started
        experiment = rest_get(port, "experiment")
        yield FinishedExperiment(
            port=port,
            config=config,
            jobs=rest_get(port, "trial-jobs"),
            experiment=experiment,
            log_dir=root / "experiments" / experiment["id"] / "log",
            seconds=seconds,
        )
    finally:
        subprocess.run([sys.executable, "-m", NNICTL, "stop", "--port", str(port)], env=env,
                       capture_output=True, timeout=120)
