"""Reliability with real processes: ``kill -9`` during an Optuna study and during an NNI experiment,
each resumed with nothing lost and nothing done twice; optuna-dashboard served on 127.0.0.1 only.

The other kill tests live next to what they kill (training: test_training_run.py, accuracy data
sets: test_accuracy_predictor.py, latency tables: test_latency.py); concurrency on SQLite and
PostgreSQL is in test_optuna_sampler.py; NNI's manager on 127.0.0.1 in test_nni_compat.py.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import optuna
import pytest
from nnictl_experiment import free_port, listening_addresses
from optuna.trial import TrialState

REPO = Path(__file__).resolve().parents[1]
TINY_SPACE = (
    "dict(kernel_sizes=(3, 5), expand_ratios=(2, 3), depths=(1, 2), resolutions=(32, 40), "
    "base_widths=(8, 8, 16, 24, 32, 48, 64), stage_strides=(2, 2, 2), "
    "stage_activations=('relu', 'hswish', 'hswish'), stage_se=(False, True, True))"
)
"""The scripts' space (conftest's tiny space): 3 stages, 16 labels, 16,000 subnets."""


def _environment(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", "HOME": str(tmp_path / "home"),
            "PYTHONWARNINGS": "ignore"}


def _kill(process: subprocess.Popen[bytes]) -> None:
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL


# ------------------------------------------------------------------------------- Optuna
OPTUNA_WORKER = f"""
import sys, time

import numpy as np
import optuna
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.study import MaxTrialsCallback
from optuna.trial import TrialState

from ofa_nni import AnalyticCostModel, ArchSpace
from strategies.optuna_sampler import OFAEvolutionSampler, set_constraints, suggest_sample

optuna.logging.set_verbosity(optuna.logging.WARNING)
url, target, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
space = ArchSpace(**{TINY_SPACE})
macs = AnalyticCostModel(space).macs
weights = np.random.default_rng(0).normal(scale=0.01, size=space.feature_dim)
# The recipe for workers that may die (docs: strategies/optuna_sampler.py): Optuna's heartbeat marks a
# dead worker's RUNNING trial FAIL, and the retry callback queues its subnet again.
storage = RDBStorage(url, heartbeat_interval=1, grace_period=2,
                     heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=1))
study = optuna.load_study(study_name="killed", storage=storage,
                          sampler=OFAEvolutionSampler(space=space, seed=0, n_startup_trials=4))


def objective(trial):
    sample = suggest_sample(trial, space)
    mega_macs = macs(sample) / 1e6
    set_constraints(trial, {{"macs": mega_macs - 0.9}})
    time.sleep(seconds)  # the evaluation, during which the worker is killed
    return float(space.to_features([sample])[0] @ weights + 0.03 * np.log(mega_macs)), mega_macs


study.optimize(objective, callbacks=[MaxTrialsCallback(target, states=(TrialState.COMPLETE,))])
"""


def _snapshot(trial: optuna.trial.FrozenTrial) -> tuple:
    return (trial.number, trial.state, trial.params, trial.values, trial.user_attrs, trial.constraints,
            trial.datetime_complete)


@pytest.mark.slow
@pytest.mark.kill
def test_optuna_worker_killed_mid_trial_resumes(tmp_path):
    """A worker running a constrained two-objective study with OFAEvolutionSampler on SQLite is
    killed (-9) in the middle of a trial, after some trials completed, and started again."""
    url = f"sqlite:///{tmp_path / 'study.db'}"
    optuna.create_study(study_name="killed", storage=url, directions=["maximize", "minimize"])
    target, killed_after = 10, 4
    script = tmp_path / "worker.py"
    script.write_text(OPTUNA_WORKER)
    command = [sys.executable, str(script), url, str(target), "0.5"]
    env = _environment(tmp_path)
    worker = subprocess.Popen(command, cwd=REPO, env=env, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while True:
        assert worker.poll() is None, worker.stderr.read().decode()[-3000:] if worker.stderr else ""
        assert time.monotonic() < deadline, "the worker did not reach the kill point"
        trials = optuna.load_study(study_name="killed", storage=url).get_trials()
        complete = [t for t in trials if t.state == TrialState.COMPLETE]
        running = [t for t in trials if t.state == TrialState.RUNNING and len(t.params) == 16]
        if len(complete) >= killed_after and running:
            break
        time.sleep(0.05)
    _kill(worker)
    killed_at = time.monotonic()
    before = optuna.load_study(study_name="killed", storage=url).get_trials()
    (killed,) = [t for t in before if t.state == TrialState.RUNNING]  # Optuna leaves it RUNNING
    assert killed.params and killed.user_attrs["arch"]
    time.sleep(max(0.0, 2.5 - (time.monotonic() - killed_at)))  # past the grace period

    subprocess.run(command, cwd=REPO, env=env, check=True, timeout=600, capture_output=True)

    after = optuna.load_study(study_name="killed", storage=url).get_trials()
    by_number = {t.number: t for t in after}
    # Nothing lost: every trial finished before the kill is there, unchanged.
    for trial in before:
        if trial.state.is_finished():
            assert _snapshot(by_number[trial.number]) == _snapshot(trial)
    # The killed trial was failed on restart and its subnet run again, once.
    assert by_number[killed.number].state == TrialState.FAIL
    (retry,) = [t for t in after if t.system_attrs.get("failed_trial") == killed.number]
    assert retry.state == TrialState.COMPLETE and retry.number > killed.number
    assert retry.params == killed.params and retry.user_attrs["arch"] == killed.user_attrs["arch"]
    # The target is reached without duplicates: trial numbers 0..n-1, every completed subnet distinct.
    assert sorted(by_number) == list(range(len(after)))
    complete = [t for t in after if t.state == TrialState.COMPLETE]
    assert len(complete) == target
    archs = [t.user_attrs["arch"] for t in complete]
    assert len(set(archs)) == len(archs)
    # The restarted sampler continued from the storage: its proposals are claimed and new.
    proposed_after = [t for t in complete if t.number > retry.number]
    assert proposed_after
    for trial in proposed_after:
        assert trial.system_attrs["ofa_nni:arch"] == trial.user_attrs["arch"]
        assert trial.constraints["macs"] == pytest.approx(trial.values[1] - 0.9)


# ------------------------------------------------------------------------------- NNI
NAS_RUN = f"""
import json, os, sys, time

import nni
import numpy as np
import torch
from nni.nas.evaluator import FunctionalEvaluator
from nni.nas.experiment import NasExperiment

from search_spaces import OFAMobileNetV3Space
from strategies import OFAEvolution

work, action, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
torch.manual_seed(0)
space = OFAMobileNetV3Space(**{TINY_SPACE}, num_classes=4)
arch_space = space.arch_space
weights = np.random.default_rng(0).normal(size=arch_space.feature_dim)


def evaluate(model):
    # Recorded before the evaluation: a kill leaves the subnet in flight in the record.
    with open(os.path.join(work, "evaluations.jsonl"), "a") as record:
        record.write(json.dumps({{"arch": model.arch, "pid": os.getpid()}}) + "\\n")
        record.flush()
        os.fsync(record.fileno())
    time.sleep(seconds)
    nni.report_final_result(float(arch_space.to_features([arch_space.parse(model.arch)])[0] @ weights))


strategy = OFAEvolution(population_size=6, generations=3, seed=2)
experiment = NasExperiment(space, FunctionalEvaluator(evaluate), strategy, id="killed")
experiment.config.experiment_working_directory = os.path.join(work, "experiments")
if action == "create":
    experiment.run()
else:
    experiment.resume()
experiment.stop()
print("RESULT", json.dumps({{"result": [[t.arch, t.score] for t in strategy.result],
                             "evaluations": strategy.search.evaluations}}))
"""


def _nas_run(work: Path, action: str, seconds: float) -> subprocess.Popen[str]:
    work.mkdir(parents=True, exist_ok=True)
    script = work.parent / "nas_run.py"
    script.write_text(NAS_RUN)
    return subprocess.Popen([sys.executable, str(script), str(work), action, str(seconds)], cwd=REPO,
                            env=_environment(work), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _result(process: subprocess.Popen[str]) -> dict:
    output, _ = process.communicate(timeout=600)
    assert process.returncode == 0, output[-3000:]
    (line,) = [line for line in output.splitlines() if line.startswith("RESULT ")]
    return dict(json.loads(line.removeprefix("RESULT ")))


def _evaluated(work: Path) -> list[str]:
    return [json.loads(line)["arch"] for line in (work / "evaluations.jsonl").read_text().splitlines()]


@pytest.mark.slow
@pytest.mark.kill
def test_nas_experiment_killed_mid_run_resumes(tmp_path):
    """OFAEvolution (real evaluation, sequential engine) in a NasExperiment killed (-9) while a
    subnet is being evaluated, then ``NasExperiment(..., id=...).resume()``: the resumed search is the
    uninterrupted one, and only the subnet in flight is evaluated twice."""
    uninterrupted = _nas_run(tmp_path / "uninterrupted", "create", 0.0)
    work = tmp_path / "killed"
    run = _nas_run(work, "create", 0.3)
    killed_after = 8
    deadline = time.monotonic() + 300
    while not ((work / "evaluations.jsonl").exists() and len(_evaluated(work)) >= killed_after):
        assert run.poll() is None, run.communicate()[0][-3000:]
        assert time.monotonic() < deadline, "the experiment did not reach the kill point"
        time.sleep(0.05)
    _kill(run)
    before = _evaluated(work)

    resumed = _result(_nas_run(work, "resume", 0.0))
    expected = _result(uninterrupted)
    after = _evaluated(work)[len(before):]

    assert resumed == expected  # same search state, same subnets chosen with the same scores
    reference = _evaluated(tmp_path / "uninterrupted")
    assert len(reference) == expected["evaluations"]
    # Nothing lost, nothing done twice but the subnet in flight at the kill (evaluated first again)
    # -- or nothing at all, when the kill fell between a checkpoint and the next evaluation.
    assert before + after == reference or before[:-1] + after == reference
    assert set(Counter(before + after) - Counter(reference)) <= {before[-1]}


# ------------------------------------------------------------------------------- web UIs
def test_optuna_dashboard_serves_on_loopback_only_by_default(tmp_path):
    """optuna-dashboard without --host listens on 127.0.0.1 only (its default), and answers there."""
    from browser import wait_for_http

    storage = f"sqlite:///{tmp_path / 'study.db'}"
    optuna.create_study(study_name="bound", storage=storage).optimize(lambda t: t.suggest_float("x", 0, 1),
                                                                       n_trials=2)
    dashboard = Path(sys.executable).with_name("optuna-dashboard")
    port = free_port()
    server = subprocess.Popen([str(dashboard), storage, "--port", str(port)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, env=_environment(tmp_path))
    try:
        wait_for_http(f"http://127.0.0.1:{port}/api/studies", timeout=120, process=server)
        assert listening_addresses(port) == {"127.0.0.1"}
    finally:
        server.terminate()
        server.wait(timeout=30)

