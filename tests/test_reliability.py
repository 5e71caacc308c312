"""Reliability with real processes: ``kill -9`` during an Optuna study and during an NNI experiment,
each resumed with nothing lost and nothing done twice; an export stopped by SIGINT, SIGTERM or
SIGKILL leaves the earlier export as it was; optuna-dashboard served on 127.0.0.1 only.

The other kill tests live next to what they kill (training: test_training_run.py, accuracy data
sets: test_accuracy_predictor.py, latency tables: test_latency.py); concurrency on SQLite and
PostgreSQL is in test_optuna_sampler.py; NNI's manager on 127.0.0.1 in test_nni_compat.py.
"""

from __future__ import annotations

import json
import os
import re
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
                          sampler=OFAEvolutionSampler(arch_space=space, seed=0, n_startup_trials=4))


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


# ------------------------------------------------------------------------------- nnictl
SLOW_RESUMED_TUNER = """
# sitecustomize of test_nnictl_experiment_killed_with_trials_running_resumes: a resumed NNI dispatcher
# initialises its tuner only once the file $OFA_NNI_TEST_RELEASE exists. On a loaded machine the
# trials NNI resumes can end before the new tuner is ready; here they always do.
import os

if os.environ.get("SDK_PROCESS") == "dispatcher" and os.environ.get("NNI_MODE") == "resume":
    import time

    from nni.runtime.msg_dispatcher import MsgDispatcher

    initialize = MsgDispatcher.handle_initialize

    def handle_initialize(self, data):
        deadline = time.monotonic() + 300
        while not os.path.exists(os.environ["OFA_NNI_TEST_RELEASE"]) and time.monotonic() < deadline:
            time.sleep(0.2)
        return initialize(self, data)

    MsgDispatcher.handle_initialize = handle_initialize
"""


def _evaluating(root: Path, experiment_id: str, trial_id: str) -> bool:
    """Whether a trial has its parameters (it logs its connection to NNI when it asks for them)."""
    log = root / "experiments" / experiment_id / "environments" / "local-env" / "trials" / trial_id / "trial.log"
    return log.exists() and "Connect to trial command channel" in log.read_text()


def _parameters(job: dict) -> dict:
    """What NNI gave a trial job: its parameter id and parameters."""
    return dict(json.loads(job["hyperParameters"][0]))


@pytest.mark.slow
@pytest.mark.kill
def test_nnictl_experiment_killed_with_trials_running_resumes(tmp_path):
    """The example nnictl experiment (OFAEvolutionTuner, real trials, 2 at a time) whose NNI manager
    is killed (-9) while two trials evaluate, then ``ofa-nni nni resume``, with the resumed tuner
    ready only after NNI has run those two trials again (NNI restarts them before the tuner is
    initialised). The experiment completes its trials: no subnet evaluated twice, each trial in flight
    at the kill run again once under its own trial and parameter id and credited to the tuner, and
    the dispatcher neither drops a metric nor reuses an id nor fails."""
    from nnictl_experiment import (
        TINY,
        TINY_SPEC,
        example_config,
        final_metric,
        kill_manager,
        nni_environment,
        nnictl,
        rest_get,
        train_tiny_supernet,
        wait_for_status,
    )

    from strategies.nni_tuner import OFAEvolutionTuner

    started = time.monotonic()
    trials = 6
    supernet = train_tiny_supernet(tmp_path / "supernet-run")
    config, _ = example_config(supernet, tmp_path, trials=trials, population=4)
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(SLOW_RESUMED_TUNER)
    release = tmp_path / "release-the-resumed-tuner"
    env = nni_environment(tmp_path)
    env.update(PYTHONPATH=os.pathsep.join(filter(None, [str(hook), env.get("PYTHONPATH")])),
               OFA_NNI_TEST_RELEASE=str(release))
    port = free_port()
    created = nnictl(env, "create", "--config", str(config), "--port", str(port))
    assert created.returncode == 0, created.stdout + created.stderr
    try:
        experiment_id = rest_get(port, "experiment")["id"]
        deadline = time.monotonic() + 300
        while True:  # kill when 2 trials succeeded and 2 others evaluate
            assert time.monotonic() < deadline, "the experiment did not reach the kill point"
            jobs = rest_get(port, "trial-jobs")
            running = [job for job in jobs if job["status"] == "RUNNING"]
            succeeded = [job for job in jobs if job["status"] == "SUCCEEDED"]
            if len(succeeded) >= 2 and len(running) == 2 and all(
                    _evaluating(tmp_path, experiment_id, job["trialJobId"]) for job in running):
                break
            time.sleep(0.2)
        kill_manager(port)
        before = {job["trialJobId"]: job for job in jobs}

        resumed = nnictl(env, "resume", experiment_id, "--port", str(port))
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
        log_dir = tmp_path / "experiments" / experiment_id / "log"
        # NNI reruns the trials in flight at the kill at once, under their trial ids.
        deadline = time.monotonic() + 60
        while not (counts := re.findall(r"where (\d+) is resuming", (log_dir / "nnimanager.log").read_text())):
            assert time.monotonic() < deadline, "the resumed manager did not log its resumed trials"
            time.sleep(0.5)
        in_flight = int(counts[0])
        assert 1 <= in_flight <= 2
        deadline = time.monotonic() + 180
        while True:
            assert time.monotonic() < deadline, "the resumed trials did not end"
            statuses = {job["trialJobId"]: job["status"] for job in rest_get(port, "trial-jobs")}
            if all(statuses[job["trialJobId"]] == "SUCCEEDED" for job in running):
                break
            time.sleep(0.5)
        release.touch()  # only now the resumed tuner gets its search space, results and requests

        status = wait_for_status(port, ("DONE", "ERROR", "STOPPED"), timeout=240)
        assert status == {"status": "DONE", "errors": []}, status
        jobs = rest_get(port, "trial-jobs")
    finally:
        nnictl(env, "stop", "--port", str(port), bound=False)

    assert len(jobs) == trials and [job["status"] for job in jobs] == ["SUCCEEDED"] * trials
    # Nothing done twice: every trial's subnet (as it reports it) is a different one.
    canonical = OFAEvolutionTuner(space=TINY_SPEC).canonical_arch
    archs = [canonical(TINY.parse(final_metric(job)["arch"])) for job in jobs]
    assert len(set(archs)) == trials, archs
    log = (log_dir / "dispatcher.log").read_text()
    resumed_log = log[log.rindex("Dispatcher started"):]  # the killed manager's tuner logs its lost connection
    # Nothing lost: the resumed tuner was told every trial's result (imported, resumed or new).
    assert set(re.findall(r"told arch (\S+) score", resumed_log)) == set(archs)
    # The trials in flight: run again under their trial ids and parameter ids, one metric each,
    # credited to the tuner (not dropped as of an "unknown job parameter id").
    resumed_ids = {int(i) for i in re.findall(r"resumed trial of parameter id (\d+) runs", resumed_log)}
    rerun = [job for job in jobs if _parameters(job)["parameter_id"] in resumed_ids]
    assert len(rerun) == len(resumed_ids) == in_flight
    for job in rerun:
        assert job["trialJobId"] in {job["trialJobId"] for job in running}  # ran when the manager was killed
        assert len(job["finalMetricData"]) == 1
        assert f"(parameter id {_parameters(job)['parameter_id']}); " in resumed_log  # told arch A score S (...)
    # New trials get new parameter ids, after every resumed one.
    new_ids = [_parameters(job)["parameter_id"] for job in jobs if job["trialJobId"] not in before]
    assert new_ids and min(new_ids) > max(resumed_ids)
    assert "Traceback" not in resumed_log and "ERROR" not in resumed_log
    assert "unknown job parameter id" not in resumed_log
    print(f"nnictl killed with {in_flight} trial(s) running and resumed: {trials} trials in "
          f"{time.monotonic() - started:.0f} s")


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



# ------------------------------------------------------------------------------- export
def _export(work: Path, supernet: Path, arch: str, out: Path, *extra: str) -> subprocess.Popen[str]:
    """``ofa-nni export`` of an untrained supernet (its large logits need a looser --atol)."""
    return subprocess.Popen([sys.executable, "-m", "ofa_nni.cli", "export", "--supernet", str(supernet), "--arch", arch,
                             "--out-dir", str(out), "--calibration-images", "32", "--quiet", "--atol", "1e-2", *extra],
                            cwd=REPO, env=_environment(work), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


def _files(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in directory.iterdir() if p.is_file()}


@pytest.mark.slow
@pytest.mark.kill
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL])
def test_export_stopped_in_the_latency_step_leaves_the_earlier_export(tmp_path, signum):
    """A re-export stopped while it measures latency (every model file written, exports.json not yet)
    used to delete the earlier export's model files while the old exports.json still listed them.
    Now the earlier export stays exactly as it was; SIGINT/SIGTERM exit 130/143 and leave nothing
    behind, and the staging folder a SIGKILL leaves is removed by the next export."""
    from conftest import TINY_SPACE_KWARGS

    from search_spaces import OFAMobileNetV3Space

    space = OFAMobileNetV3Space(**{**TINY_SPACE_KWARGS, "num_classes": 10})  # the tiny space, digits' 10 classes
    supernet = space.save(tmp_path / "supernet.pt")
    arch = space.arch_space.format(space.arch_space.max_sample())
    out = tmp_path / "exports"
    first = _export(tmp_path, supernet, arch, out, "--no-latency")
    output, _ = first.communicate(timeout=600)
    assert first.returncode == 0, output
    earlier = _files(out)
    assert sorted(earlier) == ["exports.json", "subnet1.onnx", "subnet1.pt"]

    again = _export(tmp_path, supernet, arch, out, "--latency-repeats", "100000", "--no-evaluate")
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and again.poll() is None:
        staged = list(out.glob(".export-*/subnet1.onnx"))  # the last model file: latency comes next
        if staged:
            break
        time.sleep(0.05)
    time.sleep(1.0)
    assert again.poll() is None, again.communicate()[0]
    again.send_signal(signum)
    output, _ = again.communicate(timeout=120)
    assert again.returncode == (-signum if signum == signal.SIGKILL else 128 + signum), output
    assert _files(out) == earlier  # the earlier models and the exports.json that lists them
    left = [p.name for p in out.iterdir() if p.name not in earlier]
    if signum == signal.SIGKILL:
        assert len(left) == 1 and left[0].startswith(".export-")  # nobody ran to remove it...
        third = _export(tmp_path, supernet, arch, out, "--no-latency", "--no-evaluate")
        output, _ = third.communicate(timeout=600)
        assert third.returncode == 0, output
        assert sorted(p.name for p in out.iterdir()) == sorted(earlier)  # ...the next export did
    else:
        assert f"{signal.Signals(signum).name}: interrupted" in output and "Traceback" not in output
        assert left == []
    assert not (tmp_path / ".exports.lock").exists()
