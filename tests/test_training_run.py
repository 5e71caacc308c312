"""train(config) / ``ofa-nni train``: run directory, checkpoints, resume (also after kill -9), errors."""

from __future__ import annotations

import copy
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from ofa_nni.app.runner import train
from ofa_nni.training import CheckpointError, ConfigError, demo_config, load_checkpoint, load_config
from ofa_nni.training.checkpoint import atomic_torch_save, save_checkpoint
from search_spaces import load_supernet

REPO = Path(__file__).resolve().parents[1]

TINY_TRAIN = {
    "seed": 0,
    "space": {"preset": "cpu", "kernel_sizes": [3, 5], "expand_ratios": [2, 3], "depths": [1, 2],
              "resolutions": [16, 20]},
    "data": {"kind": "digits", "batch_size": 32, "calibration_images": 64},
    "strategy": {"name": "progressive_shrinking", "epochs_factor": 0.001},  # one epoch per phase
    "validation": {"random_subnets": 1, "calibration_batches": 1},
    "trainer": {"progress_bar": False, "limit_train_batches": 3, "limit_val_batches": 1},
}


def _config(**changes):
    config = copy.deepcopy(TINY_TRAIN)
    for section, values in changes.items():
        if isinstance(values, dict):
            config.setdefault(section, {}).update(values)
        else:
            config[section] = values
    return config


def test_train_writes_the_run_directory_and_resume_does_nothing_twice(tmp_path):
    result = train(_config(), run_dir=tmp_path / "run")
    assert [p["name"] for p in result.phases] == ["full", "kernel", "depth1", "depth2", "expand1", "expand2"]
    assert [h["epoch"] for h in result.history] == list(range(6))
    assert all(0.0 <= p["val_acc_largest"] <= 1.0 and p["seconds"] > 0 for p in result.phases)
    run = tmp_path / "run"
    assert (run / "config.yaml").is_file() and (run / "metrics.json").is_file()
    assert load_config(run / "config.yaml").run_dir == str(run)
    csv = (run / "logs" / "version_0" / "metrics.csv").read_text()
    assert "val_acc_smallest" in csv and "val_acc_largest" in csv and "train_loss" in csv
    checkpoint = load_checkpoint(result.checkpoint)
    assert checkpoint["epochs_completed"] == 6 and checkpoint["phase_name"] == "expand2"
    assert checkpoint["steps_completed"] == 18
    space = load_supernet(result.supernet_path)
    for key, value in space.state_dict().items():
        assert torch.equal(value, checkpoint["supernet"][key])
    assert torch.isfinite(space(torch.randn(2, 3, 20, 20))).all()

    # Without --resume an existing run is refused (nothing is overwritten) ...
    with pytest.raises(CheckpointError, match="already holds a training run.*--resume"):
        train(_config(), run_dir=run)
    # ... with it, a finished run has nothing left to do.
    again = train(_config(), run_dir=run, resume=True)
    assert [h["epoch"] for h in again.history] == list(range(6))
    assert load_checkpoint(again.checkpoint)["steps_completed"] == 18


def test_train_with_the_sandwich_rule(tmp_path):
    config = {**_config(), "strategy": {"name": "sandwich", "epochs": 2, "num_random": 1}}
    result = train(config, run_dir=tmp_path / "run")
    assert [p["name"] for p in result.phases] == ["sandwich"] and result.phases[0]["epochs"] == 2
    checkpoint = load_checkpoint(result.checkpoint)
    assert checkpoint["teacher"] is None  # inplace distillation: no separate teacher
    assert checkpoint["schedule"][0]["subnets_per_step"] == 3 and checkpoint["schedule"][0]["sandwich"]


def test_training_without_validation_epochs_does_not_warn_about_unrecalibrated_subnets(tmp_path):
    """NNI's one-shot run evaluates the supernet itself; workaround 12 warned about it as if a frozen
    subnet had been scored without BN recalibration (seen when validation ran less often than the
    phases' epochs), pointing a CLI user to a Python API."""
    import warnings

    from ofa_nni._nni_compat import UNRECALIBRATED_WARNING

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        train(_config(validation={"every_n_epochs": 10}), run_dir=tmp_path / "run")
    prefix = UNRECALIBRATED_WARNING.split("{space}")[0]
    assert not [w for w in caught if str(w.message).startswith(prefix)]


def test_resume_refuses_mismatched_and_corrupt_checkpoints(tmp_path):
    run = tmp_path / "run"
    train(_config(strategy={"epochs_factor": 0.001, "phases": {"expand2": {"epochs": 1}}}), run_dir=run)
    last = run / "checkpoints" / "last.pt"
    with pytest.raises(CheckpointError,
                       match=r"another run \(schedule\[0\]\.epochs: checkpoint has 1, this run has 4"):
        train(_config(strategy={"epochs_factor": 0.02}), run_dir=run, resume=True)
    with pytest.raises(CheckpointError,
                       match=r"space\.kernel_sizes: checkpoint has \[3, 5\], this run has \[3, 5, 7\]"):
        train(_config(space={"kernel_sizes": [3, 5, 7]}), run_dir=run, resume=True)
    with pytest.raises(CheckpointError, match="seed: checkpoint has 0, this run has 1"):
        train(_config(seed=1), run_dir=run, resume=True)
    last.write_bytes(last.read_bytes()[:1000])  # a torn file (what a non-atomic write could leave)
    with pytest.raises(CheckpointError, match="corrupt or not a torch file"):
        train(_config(), run_dir=run, resume=True)
    atomic_torch_save({"weights": torch.zeros(2)}, last)
    with pytest.raises(CheckpointError, match="not an ofa-nni training checkpoint"):
        train(_config(), run_dir=run, resume=True)


class NotPlainData:
    """Any class: unpickling it could run code, so weights_only loading must refuse it."""


def test_checkpoints_load_weights_only(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"format": "ofa-nni-training", "version": 1, "payload": NotPlainData()}, path)
    with pytest.raises(CheckpointError, match="corrupt or not a torch file"):
        load_checkpoint(path)  # weights_only=True refuses to unpickle arbitrary objects
    with pytest.raises(ValueError, match="lacks"):
        save_checkpoint(tmp_path / "x.pt", {"space": {}})
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "missing.pt")
    state = {"format": "ofa-nni-training", "version": 99}
    atomic_torch_save(state, path)
    with pytest.raises(CheckpointError, match="version 99"):
        load_checkpoint(path)
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []  # no temporary left


def test_config_validation_errors(tmp_path):
    cases = [
        ({"data": {"bach_size": 3}}, r"data\.bach_size: unknown key; allowed in data: \['batch_size'"),
        ({"data": {"batch_size": "64"}}, r"data\.batch_size: expected an int, got '64'"),
        ({"strategy": {"phases": {"kernal": {"epochs": 3}}}}, r"unknown phase 'kernal'; allowed: \['full', 'kernel'"),
        ({"strategy": {"phases": {"kernel": {"epochs": 2.5}}}}, r"strategy\.phases\.kernel\.epochs: expected an int"),
        ({"strategy": {"phases": {"kernel": {"epoch": 2}}}}, r"unknown key 'epoch'; allowed: \['epochs'"),
        ({"strategy": {"name": "darts"}}, r"strategy\.name: 'darts' is not a strategy; allowed"),
        ({"strategy": {"name": "sandwich", "epochs_factor": 1}}, r"strategy\.epochs_factor: unknown key"),
        ({"space": {"preset": "big"}}, r"space\.preset: 'big' is not a preset; allowed: \['ofa-mobilenetv3', 'cpu'\]"),
        ({"data": {"kind": "imagenet"}}, r"data\.kind: 'imagenet' is not supported"),
        ({"trainer": {"loggers": ["wandb"]}}, r"trainer\.loggers: unknown logger"),
        ({"trainer": {"devices": [0, 1]}}, r"trainer\.devices: expected an int or a string"),
        ({"optimizer": {"nesterov": "yes"}}, r"optimizer\.nesterov: expected true/false"),
        ({"seeds": 1}, r"seeds: unknown key; allowed in the configuration"),
        ({"strategy": {"recipe": "imagenet"}},
         r"strategy\.recipe: 'imagenet' is not a recipe; allowed: \['paper', 'short'\]"),
        ({"strategy": {"phases": {"expand2": {"include_smallest": "yes"}}}},
         r"strategy\.phases\.expand2\.include_smallest: expected true or false, got 'yes'"),
    ]
    for data, message in cases:
        with pytest.raises(ConfigError, match=message):
            load_config(data)
    path = tmp_path / "bad.yaml"
    path.write_text("data: {batch_size: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(path)
    path.write_text("data:\n  batch_size: sixty\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: data\.batch_size: expected an int, got 'sixty'"):
        load_config(path)
    with pytest.raises(FileNotFoundError):
        load_config(tmp_path / "missing.yaml")


def test_example_configs_are_valid():
    digits = load_config(REPO / "examples" / "train_digits.yaml")
    assert digits.data.kind == "digits" and digits.strategy.name == "progressive_shrinking"
    demo = demo_config()  # the example shows the demo's run
    assert (digits.space, digits.strategy, digits.validation) == (demo.space, demo.strategy, demo.validation)
    folder = load_config(REPO / "examples" / "train_imagefolder.yaml")
    assert folder.data.kind == "imagefolder" and folder.trainer.devices == 8


def _cli(args, env_extra=None, **kwargs):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0", **(env_extra or {})}
    return subprocess.Popen([sys.executable, "-m", "ofa_nni.cli", "train", *args], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kwargs)


def test_cli_reports_user_errors_in_one_line(tmp_path):
    config = tmp_path / "train.yaml"
    config.write_text(yaml.safe_dump(_config(data={"kind": "imagefolder", "root": str(tmp_path / "nowhere")})))
    process = _cli(["--config", str(config), "--run-dir", str(tmp_path / "run")])
    output, _ = process.communicate(timeout=300)
    assert process.returncode == 2, output
    assert "ofa-nni train: error: image folder" in output and "expected ROOT/train/<class>" in output
    assert "Traceback" not in output
    config.write_text("strategy: {name: darts}\n")
    process = _cli(["--config", str(config)])
    output, _ = process.communicate(timeout=300)
    assert process.returncode == 2 and "strategy.name: 'darts' is not a strategy" in output
    # Resuming with another configuration: the one line, and no failure lines of NNI's before it.
    config.write_text(yaml.safe_dump(_config()))
    train(_config(), run_dir=tmp_path / "done")
    config.write_text(yaml.safe_dump(_config(strategy={"epochs_factor": 0.02})))
    process = _cli(["--config", str(config), "--run-dir", str(tmp_path / "done"), "--resume"])
    output, _ = process.communicate(timeout=300)
    assert process.returncode == 2 and "ofa-nni train: error: cannot resume from" in output, output
    assert "ERROR" not in output and "Traceback" not in output, output


# 12 epochs: full 4, kernel 2, depth1 1, depth2 2, expand1 1, expand2 2 (epochs_factor 0.02)
_KILL_SCHEDULE = {"strategy": {"epochs_factor": 0.02}, "trainer": {"limit_train_batches": 4}}
_KILL_AT = {"full": 2, "kernel": 4, "depth1": 6, "depth2": 7, "expand1": 9, "expand2": 10}
"""Epochs completed when the process is killed: the next epoch (the one interrupted) is in that phase."""


@pytest.fixture(scope="module")
def uninterrupted_run(tmp_path_factory):
    """One uninterrupted ``ofa-nni train`` run of the kill tests' schedule, shared by them."""
    directory = tmp_path_factory.mktemp("uninterrupted")
    config = directory / "train.yaml"
    config.write_text(yaml.safe_dump(_config(**_KILL_SCHEDULE)))
    reference = _cli(["--config", str(config), "--run-dir", str(directory / "run")])
    output, _ = reference.communicate(timeout=900)
    assert reference.returncode == 0, output
    assert "expand2" in output and "supernet:" in output
    return config, load_checkpoint(directory / "run" / "checkpoints" / "last.pt")


def _wait_for_epochs(process: subprocess.Popen, last: Path, epochs: int) -> int | None:
    """Poll the run's ``last.pt`` until it records ``epochs`` completed epochs (the epochs completed
    then), or None when the process ended first or 15 minutes passed."""
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline and process.poll() is None:
        if last.exists():
            try:
                done = load_checkpoint(last)["epochs_completed"]
            except (CheckpointError, FileNotFoundError):
                done = 0
            if done >= epochs:
                return int(done)
        time.sleep(0.02)
    return None


def _logged_epochs(run: Path, session: int) -> set[int]:
    """The epochs the ``session``-th process of a run (0 = the first) wrote to its metrics log."""
    lines = (run / "logs" / f"version_{session}" / "metrics.csv").read_text().splitlines()
    return {int(line.split(",")[0]) for line in lines[1:] if line}


@pytest.mark.slow
@pytest.mark.kill
def test_cli_resume_after_kill_9_in_each_phase_matches_an_uninterrupted_run(uninterrupted_run, tmp_path):
    """A real ``ofa-nni train`` run is killed with SIGKILL during an epoch of each phase in turn (full,
    kernel, depth1, depth2, expand1, expand2), each time resumed with --resume: every epoch runs
    exactly once and the final supernet (and teacher) equal the uninterrupted run's, bit for bit.
    One run killed six times, not six runs: the same six kills and resumes for a sixth of CI's time."""
    config, expected = uninterrupted_run
    run = tmp_path / "run"
    last = run / "checkpoints" / "last.pt"
    started_from = 0  # epochs completed when the current process started
    for session, (phase, kill_at) in enumerate(_KILL_AT.items()):
        process = _cli(["--config", str(config), "--run-dir", str(run), *(["--resume"] if session else [])])
        killed_after = _wait_for_epochs(process, last, kill_at)
        if killed_after is not None:
            process.send_signal(signal.SIGKILL)
        output, _ = process.communicate(timeout=60)
        assert killed_after is not None and process.returncode == -signal.SIGKILL, output
        assert expected["history"][killed_after]["phase"] == phase  # the epoch killed was in that phase
        if session:  # a resumed process logged only the epochs after the checkpoint it started from
            assert min(_logged_epochs(run, session), default=started_from) >= started_from
        started_from = killed_after

    resumed = _cli(["--config", str(config), "--run-dir", str(run), "--resume"])
    output, _ = resumed.communicate(timeout=900)
    assert resumed.returncode == 0, output
    assert min(_logged_epochs(run, len(_KILL_AT))) >= started_from

    actual = load_checkpoint(last)
    assert [h["epoch"] for h in actual["history"]] == list(range(12))  # nothing lost, nothing twice
    assert [h["phase"] for h in actual["history"]] == [h["phase"] for h in expected["history"]]
    assert actual["steps_completed"] == expected["steps_completed"] == 48
    for key, value in expected["supernet"].items():
        assert torch.equal(value, actual["supernet"][key]), key
    for key, value in expected["teacher"].items():
        assert torch.equal(value, actual["teacher"][key]), key


@pytest.mark.slow
@pytest.mark.kill
def test_cli_stopped_by_a_signal_exits_128_plus_it_and_resumes(uninterrupted_run, tmp_path):
    """SIGTERM (a scheduler's stop) used to end ``ofa-nni train`` with exit code 0 and no supernet,
    SIGINT with 1: both now end with 128 + the signal, the checkpoint intact, and --resume finishes
    the run as if nothing had happened. One run is stopped by SIGTERM, resumed, stopped by SIGINT
    after it made progress, and resumed to the end."""
    config, expected = uninterrupted_run
    run = tmp_path / "run"
    last = run / "checkpoints" / "last.pt"
    done = 0
    for session, signum in enumerate((signal.SIGTERM, signal.SIGINT)):
        process = _cli(["--config", str(config), "--run-dir", str(run), *(["--resume"] if session else [])])
        reached = _wait_for_epochs(process, last, done + 1)
        assert reached is not None, process.communicate(timeout=60)[0]
        process.send_signal(signum)
        output, _ = process.communicate(timeout=300)
        assert process.returncode == 128 + signum, output
        assert f"ofa-nni train: {signal.Signals(signum).name}: interrupted" in output and "Traceback" not in output
        assert not (run / "supernet.pt").exists()
        done = load_checkpoint(last)["epochs_completed"]
        assert done >= reached
    resumed = _cli(["--config", str(config), "--run-dir", str(run), "--resume"])
    output, _ = resumed.communicate(timeout=900)
    assert resumed.returncode == 0, output
    actual = load_checkpoint(last)
    assert [h["epoch"] for h in actual["history"]] == list(range(12))
    for key, value in expected["supernet"].items():
        assert torch.equal(value, actual["supernet"][key]), key


@pytest.mark.slow
def test_two_runs_into_one_run_directory_the_second_is_refused_at_once(tmp_path):
    """Two ``ofa-nni train`` started 0.3 s apart into one --run-dir used to both exit 0, the directory
    holding one of them: the second is now refused while the first holds the directory's lock."""
    config = tmp_path / "train.yaml"
    config.write_text(yaml.safe_dump(_config(**_KILL_SCHEDULE)))
    run = tmp_path / "run"
    first = _cli(["--config", str(config), "--run-dir", str(run)])
    time.sleep(0.3)
    second = _cli(["--config", str(config), "--run-dir", str(run)])
    outputs = {process.pid: process.communicate(timeout=900)[0] for process in (second, first)}
    # Both do the same work before they lock: usually the first wins, but a busy machine may let the
    # second overtake it. Exactly one runs, the other is refused naming it.
    (winner,) = [p for p in (first, second) if p.returncode == 0]
    (loser,) = [p for p in (first, second) if p is not winner]
    assert loser.returncode == 2, outputs[loser.pid]
    assert outputs[loser.pid].strip().splitlines()[-1].startswith(
        f"ofa-nni train: error: run directory '{run}' is in use by another ofa-nni process (PID {winner.pid};")
    assert load_checkpoint(run / "checkpoints" / "last.pt")["epochs_completed"] == 12
    assert not (tmp_path / ".run.lock").exists()


@pytest.mark.slow
@pytest.mark.parametrize("space", ["ofa-mbv3", "ofa-proxyless"])
def test_cli_data_parallel_two_cpu_processes_gloo(tmp_path, space):
    """``trainer.devices: 2`` with DDP on CPU (gloo): Lightning starts a second process; the
    subnets' gradients are all-reduced after each backward; rank 0 writes the run directory."""
    config = tmp_path / "train.yaml"
    config.write_text(yaml.safe_dump(_config(space={"name": space},
                                             trainer={"devices": 2, "strategy": "ddp_find_unused_parameters_true"})))
    process = _cli(["--config", str(config), "--run-dir", str(tmp_path / "run")])
    output, _ = process.communicate(timeout=900)
    assert process.returncode == 0, output
    assert "distributed_backend=gloo" in output and "Starting with 2 processes" in output
    assert output.count("trained in") == 1  # only rank 0 reports
    checkpoint = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")
    assert checkpoint["config"]["space"]["name"] == space
    assert [h["epoch"] for h in checkpoint["history"]] == list(range(6))
    assert checkpoint["steps_completed"] == 18  # 3 steps per epoch on each of the two processes
