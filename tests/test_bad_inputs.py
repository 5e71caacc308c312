"""The bad-input catalogue: one test per kind of bad input, across the surfaces that read it.

Every entry must end in a clear error -- ``ValueError`` or a subclass (``ConfigError``,
``CheckpointError``) or ``FileNotFoundError`` -- whose message names the culprit and what is
allowed; on the command line that is exit code 2 and one line on stderr without a traceback, and
the output location holds no half-written or temporary file afterwards. Trials that fail (NaN,
crash) are not errors but outcomes the searches must survive.

entry                     where it is raised (or handled)                         test
------------------------  ------------------------------------------------------  -----------------------------
unknown label             ArchSpace.validate (arch.py); check_nni_search_space    test_unknown_label
                          (nni_search_space.py); nni_trial.evaluate_trial
out-of-space value        ArchSpace.validate / parse; check_nni_search_space;     test_out_of_space_value
                          commands/lut.py (--resolutions); nni_trial (--arch)
missing key               ArchSpace.validate; optuna_sampler.trial_sample;        test_missing_key
                          check_nni_search_space; data.load_data (data.root)
wrong type                ArchSpace.validate / parse / __post_init__;             test_wrong_type
                          config._convert; search._parse_budgets;
                          OFAEvolutionSampler; OFAEvolutionTuner; argparse
unparsable arch string    ArchSpace.parse; OFAMobileNetV3Space.activate;          test_unparsable_arch_string
                          nni_trial (--arch); OFAEvolutionTuner
                          (logged, the metric is ignored)
empty data directory      data.image_folder (no train/ and val/;                  test_empty_data_directory
                          no class folders)
missing data directory    data.image_folder; data.cifar                           test_missing_data_directory
mis-laid data directory   data.image_folder / data.cifar (hint: pass the          test_mislaid_data_directory
                          parent); a class folder without images
corrupt checkpoint        checkpoint.load_torch_file (weights_only=True),         test_corrupt_checkpoint
                          load_checkpoint; runner.load_supernet
mismatched checkpoint     checkpoint.check_compatible (resume of another          test_mismatched_checkpoint
                          run); runner.load_supernet (other weights)
corrupt predictor         accuracy.AccuracyPredictor.load                         test_corrupt_predictor
mismatched predictor      AccuracyPredictor.load(arch_space=...) ->                    test_mismatched_predictor
                          _artifacts.require_same_space; nni_trial
corrupt latency table     latency.LatencyTable.load; LatencyTable._entry_ms       test_corrupt_latency_table
tampered latency table    LatencyTable.__init__ (times, statistic, clock,          test_tampered_latency_table
                          resolutions, correction); lut show, search --lut
damaged lut progress      latency.build._saved_progress; lut build                 test_damaged_lut_progress_file
concurrent lut builds     _artifacts.exclusive_lock; lut build                      test_concurrent_lut_builds
mismatched latency table  LatencyTable.load(arch_space=...) ->                         test_mismatched_latency_table
                          require_same_space; OFAEvolutionTuner; ofa-nni search
infeasible constraint     search._AskTellSearch._anchors_for: EvolutionSearch,    test_infeasible_constraint
                          specialize, OFAEvolutionSampler, OFAEvolutionTuner,
                          ofa-nni search
NaN metric from a trial   Optuna: FAILED, OFAEvolutionSampler._history skips;     test_nan_metric_from_trial
                          NNI: nni_tuner.metric_score -> NaN, never selected
crashing trial            Optuna: FAILED (optimize(catch=...)), not re-proposed;  test_crashing_trial
                          NNI: OFAEvolutionTuner.trial_end(success=False)
invalid YAML config       config.load_config: syntax, duplicate key, not UTF-8,   test_invalid_yaml_config
                          unknown key, wrong type, out of range, bad space;
                          ofa-nni train
failed re-export          commands/export.py: staged in OUT_DIR, moved into
                          place when complete; --calibration-images 0
                          (test_failed_reexport_leaves_the_earlier_export)
special output path       _artifacts.existing_file_mode (symlink, FIFO,           test_special_output_paths_are_refused
                          /dev/null, directory): refused, never replaced
full / read-only disk     _artifacts.atomic_write -> OutputError; export          test_full_and_read_only_outputs
                          serializes in memory (no SIGABRT)
run directory in use      _artifacts.exclusive_lock (runner.train)                test_a_run_directory_in_use_is_refused
resume, no checkpoint     runner.train (test_resume_without_a_checkpoint_is_refused)
diverged training         progressive_shrinking (loss / weights non-finite);
                          supernet_file.load_supernet (NaN weights)
                          (test_diverged_training_stops_and_nan_supernets_are_refused)
odd values and sizes      OFAMobileNetV3Space (stage_se, bn_eps, bn_momentum);    test_odd_values_in_files_and_arguments
                          commands.seed; supernet sizes (meta-device build);
                          search --population
damaged documents         app.documents (search.json, exports.json,               test_damaged_documents
                          results.json): file and key named
trainer settings          runner._trainer (accelerator, devices), runner
                          (limit_train_batches below one batch)
                          (test_trainer_settings_lightning_refuses)

Command-line cases run the real entry points (``ofa_nni.app.cli.main``, ``strategies.nni_trial.main``)
in child processes forked from one server process that imported the package once (importing NNI
and Lightning costs ~5 s of CPU per interpreter here, which the catalogue would otherwise pay per
case); :func:`test_invalid_yaml_config` also runs ``python -m ofa_nni.app.cli`` itself and checks that
both give the same exit code and stderr.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import pickle
import re
import subprocess
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest
import torch
import yaml
from conftest import TINY_SPACE_KWARGS, special_output_paths

from ofa_nni.accuracy import AccuracyDataset, AccuracyPredictor, build_accuracy_predictor
from ofa_nni.app.runner import train
from ofa_nni.arch import ArchSpace
from ofa_nni.costs import AnalyticCostModel
from ofa_nni.data import load_data
from ofa_nni.latency import LatencyTable, build_latency_table
from ofa_nni.nni_search_space import check_nni_search_space, nni_search_space
from ofa_nni.search import EvolutionSearch, specialize
from ofa_nni.training import CheckpointError, ConfigError, load_checkpoint, load_config
from ofa_nni.training.checkpoint import atomic_torch_save
from search_spaces import load_supernet
from strategies.nni_tuner import OFAEvolutionTuner
from strategies.optuna_sampler import OFAEvolutionSampler, suggest_sample, trial_sample

REPO = Path(__file__).resolve().parents[1]

# The space of the run trained once for this module (digits: 10 classes).
RUN_SPACE = {"preset": "cpu", "kernel_sizes": [3, 5], "expand_ratios": [2, 3], "depths": [1, 2],
             "resolutions": [16, 20]}
RUN_CONFIG: dict[str, Any] = {
    "seed": 0,
    "space": RUN_SPACE,
    "data": {"kind": "digits", "batch_size": 32, "calibration_images": 32},
    "strategy": {"name": "sandwich", "epochs": 1, "num_random": 0},
    "validation": {"random_subnets": 0, "calibration_batches": 1},
    "trainer": {"progress_bar": False, "loggers": [], "limit_train_batches": 1, "limit_val_batches": 1},
}
TUNER_SPACE = {**RUN_SPACE, "num_classes": 10}
TINY = ArchSpace(**TINY_SPACE_KWARGS)


# ------------------------------------------------------------------------------ CLI runner
def _entry_point_child(module: str, argv: Sequence[str], cwd: str, stdout_path: str, stderr_path: str) -> None:
    """Run ``module.main(argv)`` as ``python -m module`` would, with stdout/stderr in files, and exit
    with its code (an uncaught exception prints its traceback and exits 1, as the interpreter does)."""
    os.chdir(cwd)
    for fd, path in ((1, stdout_path), (2, stderr_path)):
        os.dup2(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), fd)
    sys.stdout = open(1, "w", closefd=False, buffering=1)  # noqa: SIM115 (closed by os._exit)
    sys.stderr = open(2, "w", closefd=False, buffering=1)  # noqa: SIM115
    sys.argv = [module, *argv]
    torch.set_num_threads(1)
    code: Any = 1
    try:
        import importlib

        code = importlib.import_module(module).main(list(argv))
    except SystemExit as exit_:
        code = exit_.code
    except BaseException:
        traceback.print_exc()
        code = 1
    finally:
        if code is not None and not isinstance(code, int):
            print(code, file=sys.stderr)
            code = 1
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code or 0)


_FORKSERVER = multiprocessing.get_context("forkserver")
_FORKSERVER.set_forkserver_preload(["ofa_nni.cli", "strategies.nni_trial", "search_spaces", "ofa_nni.training"])


def run_cli(args: Sequence[str], cwd: Path, *, module: str = "ofa_nni.cli") -> tuple[int, str, str]:
    """``python -m <module> args`` in a forked child of the preloaded server: (exit code, stdout, stderr)."""
    cwd.mkdir(parents=True, exist_ok=True)
    out, err = cwd / ".stdout.txt", cwd / ".stderr.txt"
    process = _FORKSERVER.Process(target=_entry_point_child, args=(module, list(args), str(cwd), str(out), str(err)))
    process.start()
    process.join(timeout=300)
    assert process.exitcode is not None, f"{module} {args} did not finish"
    result = process.exitcode, out.read_text(), err.read_text()
    out.unlink()
    err.unlink()
    return result


def assert_one_line_error(code: int, stderr: str, *expected: str) -> str:
    """Exit code 2 and exactly one stderr line, holding every ``expected`` text, no traceback."""
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert code == 2, (code, stderr)
    assert len(lines) == 1, stderr
    for text in expected:
        assert text in lines[0], (text, lines[0])
    return lines[0]


def assert_nothing_written(directory: Path, before: set[str] | None = None) -> None:
    """No file appeared under ``directory`` (no output, no half-written temporary file)."""
    now = {str(p.relative_to(directory)) for p in directory.rglob("*")} if directory.exists() else set()
    assert now == (before or set()), sorted(now - (before or set()))


# -------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real (tiny) training run: one sandwich-rule step on digits; its run directory."""
    run = tmp_path_factory.mktemp("run") / "run"
    train(RUN_CONFIG, run_dir=run)
    return run


@pytest.fixture(scope="module")
def supernet_file(trained_run: Path) -> Path:
    return trained_run / "supernet.pt"


@pytest.fixture(scope="module")
def run_space(supernet_file: Path) -> ArchSpace:
    space: ArchSpace = load_supernet(supernet_file).arch_space
    return space


@pytest.fixture(scope="module")
def latency_table_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real latency table of TINY (measured with few repeats)."""
    path = tmp_path_factory.mktemp("lut") / "lut.json"
    build_latency_table(TINY, resolutions=(32,), warmup=1, repeats=2, rounds=1, num_threads=1,
                        show_progress=False).save(path)
    return path


def _predictor_file(space: ArchSpace, path: Path) -> Path:
    """A real (ridge) predictor of ``space`` trained on an additive accuracy model."""
    rows = space.random_indices(40, 0)
    accuracies = 0.5 + 0.01 * rows.sum(axis=1)
    dataset = AccuracyDataset(arch_space=space, indices=rows, accuracies=accuracies)
    build_accuracy_predictor(dataset, kind="ridge").save(path)
    return path


# ----------------------------------------------------------------------------- the catalogue
def test_unknown_label(tiny_space: Any, supernet_file: Path) -> None:
    sample = TINY.max_sample()
    with pytest.raises(ValueError, match=r"unknown label\(s\) \['stage9\.block1\.kernel'\]; allowed labels look like "
                                         r"'stage1\.block1\.kernel'.*\(3 stages, 2 blocks each\)"):
        TINY.validate({**sample, "stage9.block1.kernel": 3})
    with pytest.raises(ValueError, match=r"unknown label\(s\) \['stage1\.block1\.kernal'\]"):
        tiny_space.activate({**sample, "stage1.block1.kernal": 3})
    # NNI: a search-space JSON with a label the space lacks (what the tuner checks on start).
    search_space = {**nni_search_space(TINY), "stage4.depth": {"_type": "choice", "_value": [1, 2]}}
    with pytest.raises(ValueError, match=r"has label 'stage4\.depth', which the space does not have \(3 stages of up "
                                         r"to 2 blocks\); regenerate"):
        check_nni_search_space(TINY, search_space)
    # NNI trial: parameters that are not a subnet of the trained supernet's space.
    from strategies.nni_trial import build_parser, evaluate_trial

    args = build_parser().parse_args(["--supernet", str(supernet_file)])
    with pytest.raises(ValueError, match=r"unknown label\(s\) \['resolution_px'\]"):
        evaluate_trial(args, {"resolution_px": 16})


def test_out_of_space_value(supernet_file: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"resolution: 41 is not allowed; allowed values: \[32, 40\]"):
        TINY.validate({**TINY.max_sample(), "resolution": 41})
    with pytest.raises(ValueError, match=r"stage1\.block1\.kernel: 9 is not allowed; allowed values: \[3, 5\]"):
        TINY.parse(TINY.format(TINY.max_sample()).replace("k5", "k9", 1))
    with pytest.raises(ValueError, match=r"stage1\.depth: 0 is not allowed; allowed values: \[1, 2\]"):
        TINY.parse("r32_|k3e2-k3e2_k3e2-k3e2_k3e2-k3e2")  # no active block
    search_space = nni_search_space(TINY)
    search_space["resolution"] = {"_type": "choice", "_value": [32, 48]}
    with pytest.raises(ValueError, match=r"gives 'resolution' the values \[32, 48\], but the space's choices are "
                                         r"\[32, 40\]"):
        check_nni_search_space(TINY, search_space)
    # CLI: a resolution the space does not have, for the latency table and for the NNI trial.
    out = tmp_path / "out"
    code, _, err = run_cli(["lut", "build", "--preset", "cpu", "--resolutions", "99", "--out", str(out / "lut.json"),
                            "--quiet"], tmp_path)
    assert_one_line_error(code, err, "ofa-nni lut: error:", "--resolutions [99] not in the space",
                          "allowed: [24, 28, 32]")
    code, _, err = run_cli(["lut", "build", "--preset", "cpu", "--max-rounds", "0", "--out", str(out / "lut.json"),
                            "--quiet"], tmp_path)
    assert_one_line_error(code, err, "ofa-nni lut: error:", "--max-rounds must be >= 1, got 0")
    arch = "r48" + TINY.format(TINY.max_sample())[3:]
    code, _, err = run_cli(["--supernet", str(supernet_file), "--arch", arch], tmp_path, module="strategies.nni_trial")
    assert_one_line_error(code, err, "nni_trial: error:", "resolution: 48 is not allowed; allowed values: [16, 20]")
    assert_nothing_written(out)


def test_missing_key(tmp_path: Path) -> None:
    sample = TINY.max_sample()
    del sample["stage2.depth"]
    with pytest.raises(ValueError, match=r"sample is missing 1 label\(s\): stage2\.depth"):
        TINY.validate(sample)
    search_space = nni_search_space(TINY)
    del search_space["stage3.block2.expand"]
    with pytest.raises(ValueError, match=r"lacks label 'stage3\.block2\.expand' \(choices \[2, 3\]\)"):
        check_nni_search_space(TINY, search_space)
    # Optuna: a trial that never suggested the space's labels.
    study = optuna.create_study()
    study.optimize(lambda trial: trial.suggest_float("lr", 0.0, 1.0), n_trials=1)
    with pytest.raises(ValueError, match=r"trial 0 has no parameter 'stage1\.block1\.kernel' \(16 labels missing\): "
                                         r"was it suggested with suggest_sample"):
        trial_sample(study.trials[0], TINY)
    # A data set kind that needs a directory, given none (Python API and CLI).
    with pytest.raises(ValueError, match=r"data\.root is required for 'imagefolder'"):
        load_data("imagefolder", resolution=32)
    config = tmp_path / "train.yaml"
    config.write_text(yaml.safe_dump({**RUN_CONFIG, "data": {"kind": "imagefolder"}}))
    code, _, err = run_cli(["train", "--config", str(config), "--run-dir", str(tmp_path / "run")], tmp_path)
    assert_one_line_error(code, err, "ofa-nni train: error:", "data.root is required for 'imagefolder'")
    assert not (tmp_path / "run").exists()


def test_wrong_type(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"resolution: expected a number, one of \[32, 40\]; got '32' \(str\)"):
        TINY.validate({**TINY.max_sample(), "resolution": "32"})
    with pytest.raises(ValueError, match=r"a sample must be a dict \{label: value\}, got list"):
        TINY.validate(list(TINY.max_sample().values()))
    with pytest.raises(ValueError, match="an arch string must be a str, got int"):
        TINY.parse(160)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"stage_se must hold true/false per stage, got \('no', 'yes', 'yes'\)"):
        ArchSpace(**{**TINY_SPACE_KWARGS, "stage_se": ("no", "yes", "yes")})
    with pytest.raises(ConfigError, match=r"data\.batch_size: expected an int, got '64'"):
        load_config({"data": {"batch_size": "64"}})
    costs = AnalyticCostModel(TINY)
    with pytest.raises(ValueError, match=r"budget for 'macs' must be a number, got '1e6'"):
        EvolutionSearch(arch_space=TINY, costs={"macs": costs.macs}, targets={"macs": "1e6"})
    with pytest.raises(ValueError, match=r"population_size must be an integer >= 2, got 2\.5"):
        OFAEvolutionSampler(arch_space=TINY, population_size=2.5)
    with pytest.raises(ValueError, match=r"a space description must be a mapping such as \{'preset': 'cpu'"):
        _ = OFAEvolutionTuner(space="cpu").search  # type: ignore[arg-type]
    # CLI: argparse refuses a wrong type before anything runs (usage line + the error line).
    code, _, err = run_cli(["lut", "build", "--preset", "cpu", "--repeats", "ten", "--out", str(tmp_path / "o.json")],
                           tmp_path)
    assert code == 2 and "Traceback" not in err
    assert err.strip().splitlines()[-1].endswith("error: argument --repeats: invalid int value: 'ten'")
    assert not (tmp_path / "o.json").exists()


def test_unparsable_arch_string(tiny_space: Any, supernet_file: Path, tmp_path: Path,
                                caplog: pytest.LogCaptureFixture) -> None:
    cases = {
        "r32_k3e2": r"expected 4 '_'-separated groups \(resolution \+ 3 stages\), got 2; example 'r40_k5e3",
        "x32_k3e2-k3e2_k3e2-k3e2_k3e2-k3e2": r"first group must be 'r<resolution>', got 'x32'",
        "r32_k3e2|k3e2|k3e2_k3e2-k3e2_k3e2-k3e2": r"stage 1 has more than one '\|'",
        "r32_k3e2-k3e2|_k3e2-k3e2_k3e2-k3e2": r"stage 1 has a '\|' with no blocks after it",
        "r32_k3e2_k3e2-k3e2_k3e2-k3e2": r"stage 1 must list 2 blocks \(active, then '\|', then inactive\), got 1",
        "r32_k3x2-k3e2_k3e2-k3e2_k3e2-k3e2": r"stage 1 block 1: 'k3x2' is not 'k<kernel>e<expand>' \(e\.g\. 'k5e4'\)",
    }
    for text, message in cases.items():
        with pytest.raises(ValueError, match=message):
            TINY.parse(text)
    with pytest.raises(ValueError, match="expected 4 '_'-separated groups"):
        tiny_space.activate("r32_k3e2")
    # NNI tuner: a metric whose arch does not parse is logged and ignored, never raised.
    tuner = OFAEvolutionTuner(space=TUNER_SPACE, population_size=2, seed=0)
    tuner.update_search_space(nni_search_space(tuner.arch_space))
    tuner.receive_trial_result(99, None, {"default": 0.5, "arch": "r16_garbage"})
    assert tuner.scores == {} and "has an invalid arch" in caplog.text
    # CLI: the NNI trial run by hand with a bad --arch.
    code, _, err = run_cli(["--supernet", str(supernet_file), "--arch", "r16_k3e2"], tmp_path,
                           module="strategies.nni_trial")
    assert_one_line_error(code, err, "nni_trial: error: arch string 'r16_k3e2'", "expected 4 '_'-separated groups")


def _image(path: Path) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), (120, 40, 200)).save(path)


LAYOUT = "expected ROOT/train/<class>/<image> and ROOT/val/<class>/<image>"


def assert_predictor_build_refuses(supernet: Path, root: Path, tmp_path: Path, *expected: str) -> None:
    """``ofa-nni predictor build`` on the image folder ``root``: one error line holding ``expected``
    and the layout, nothing written."""
    out = tmp_path / "out"
    code, _, err = run_cli(["predictor", "build", "--supernet", str(supernet), "--data", "imagefolder", "--data-root",
                            str(root), "--num-subnets", "5", "--out", str(out / "predictor.npz"), "--quiet"], tmp_path)
    assert_one_line_error(code, err, "ofa-nni predictor: error:", *expected, LAYOUT)
    assert_nothing_written(out)



def test_data_root_is_named_as_the_cli_option(supernet_file: Path, tmp_path: Path) -> None:
    """The command line's option is --data-root (the library's message named the configuration's
    data.root, which a CLI user never typed)."""
    out = tmp_path / "out"
    for extra, expected in ((["--data", "npz"], "--data npz needs --data-root: the local .npz file"),
                            (["--data", "imagefolder"], "--data imagefolder needs --data-root: the local directory"),
                            (["--data-root", str(tmp_path)], f"--data-root {tmp_path} is not used by --data digits")):
        code, _, err = run_cli(["predictor", "build", "--supernet", str(supernet_file), *extra, "--num-subnets", "5",
                                "--out", str(out / "predictor.npz"), "--quiet"], tmp_path)
        assert_one_line_error(code, err, "ofa-nni predictor: error:", expected)
        assert_nothing_written(out)


def test_empty_data_directory(supernet_file: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match=r"empty/train' is missing; expected ROOT/train/<class>/<image>"):
        load_data("imagefolder", root=empty, resolution=32)
    for split in ("train", "val"):
        (tmp_path / "no_classes" / split).mkdir(parents=True)
    with pytest.raises(ValueError, match=r"no_classes/train' has no class folders; expected ROOT/train/<class>"):
        load_data("imagefolder", root=tmp_path / "no_classes", resolution=32)
    assert_predictor_build_refuses(supernet_file, empty, tmp_path, f"{empty / 'train'}' is missing")


def test_missing_data_directory(supernet_file: Path, tmp_path: Path) -> None:
    nowhere = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError, match=r"image folder '.*nowhere' does not exist; expected ROOT/train"):
        load_data("imagefolder", root=nowhere, resolution=32)
    with pytest.raises(FileNotFoundError, match=r"CIFAR directory '.*nowhere' does not exist; expected "
                                                r"ROOT/cifar-10-batches-py/"):
        load_data("cifar10", root=nowhere, resolution=32)
    assert_predictor_build_refuses(supernet_file, nowhere, tmp_path, f"image folder '{nowhere}' does not exist")


def test_mislaid_data_directory(supernet_file: Path, tmp_path: Path) -> None:
    root = tmp_path / "images"
    for split in ("train", "val"):
        _image(root / split / "cat" / "0.png")
    assert load_data("imagefolder", root=root, resolution=16).num_classes == 1  # the right layout loads
    # A split folder given instead of ROOT.
    with pytest.raises(FileNotFoundError, match=rf"'{root / 'train'}' is itself a split folder: pass its parent "
                                                rf"'{root}'"):
        load_data("imagefolder", root=root / "train", resolution=16)
    # Class folders directly under ROOT.
    _image(tmp_path / "flat" / "cat" / "0.png")
    with pytest.raises(FileNotFoundError, match=r"holds \['cat'\] but no train/ and val/: put the class folders"):
        load_data("imagefolder", root=tmp_path / "flat", resolution=16)
    # Images without class folders.
    for split in ("train", "val"):
        _image(tmp_path / "loose" / split / "0.png")
    with pytest.raises(ValueError, match=r"loose/train' has no class folders"):
        load_data("imagefolder", root=tmp_path / "loose", resolution=16)
    # A class folder holding no image.
    (tmp_path / "text" / "train" / "cat").mkdir(parents=True)
    (tmp_path / "text" / "train" / "cat" / "notes.txt").write_text("not an image")
    _image(tmp_path / "text" / "val" / "cat" / "0.png")
    with pytest.raises(ValueError, match=r"Found no valid file for the classes cat\. Supported extensions are: "
                                         r"\.jpg"):
        load_data("imagefolder", root=tmp_path / "text", resolution=16)
    # CIFAR's batch folder given instead of its parent.
    batches = tmp_path / "cifar" / "cifar-10-batches-py"
    batches.mkdir(parents=True)
    for name in [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch", "batches.meta"]:
        (batches / name).write_bytes(b"")
    with pytest.raises(FileNotFoundError, match=rf"'{batches}' is itself that folder: pass its parent"):
        load_data("cifar10", root=batches, resolution=32)
    assert_predictor_build_refuses(supernet_file, root / "train", tmp_path, "is itself a split folder: pass its parent")


class _RunsCodeWhenUnpickled:
    """Unpickling this would create a marker file: weights_only loading must refuse it unread."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> Any:
        return (Path.touch, (self.marker,))


def test_corrupt_checkpoint(trained_run: Path, tmp_path: Path) -> None:
    good = (trained_run / "checkpoints" / "last.pt").read_bytes()
    marker = tmp_path / "code-ran"
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "empty.pt").write_bytes(b"")
    (corrupt / "truncated.pt").write_bytes(good[: len(good) // 2])
    (corrupt / "garbage.pt").write_bytes(bytes(range(256)) * 4)
    torch.save({"format": "ofa-nni-training", "version": 1, "payload": _RunsCodeWhenUnpickled(marker)},
               corrupt / "pickled-object.pt")
    atomic_torch_save({"weights": torch.zeros(2)}, corrupt / "other-kind.pt")
    (corrupt / "plain-pickle.pt").write_bytes(pickle.dumps({"weights": [0.0, 1.0]}, protocol=4))
    messages = {
        "empty.pt": "is corrupt or not a torch file (EOFError",
        "truncated.pt": "is corrupt or not a torch file",
        "garbage.pt": "is corrupt or not a torch file",
        "pickled-object.pt": "holds Python objects other than tensors and plain containers, refused unread",
        "other-kind.pt": "is not an ofa-nni training checkpoint",
        "plain-pickle.pt": "is corrupt or not a torch file",
    }
    for name, message in messages.items():
        with pytest.raises(CheckpointError, match=re.escape(message)):
            load_checkpoint(corrupt / name)
        with pytest.raises(CheckpointError):
            load_supernet(corrupt / name)
    assert not marker.exists(), "unpickling ran code from the file"
    # CLI: every command reading a supernet says which file is bad, writes nothing.
    out = tmp_path / "out"
    for name, message in messages.items():
        if name == "other-kind.pt":
            message = "is neither an ofa-nni supernet nor a training checkpoint"
        code, _, err = run_cli(["nni", "search-space", "--supernet", str(corrupt / name), "--out",
                                str(out / "search_space.json")], tmp_path)
        assert_one_line_error(code, err, "ofa-nni nni: error:", str(corrupt / name), message)
    code, _, err = run_cli(["lut", "build", "--supernet", str(corrupt / "truncated.pt"), "--out", str(out / "lut.json"),
                            "--quiet"], tmp_path)
    assert_one_line_error(code, err, "ofa-nni lut: error:", "truncated.pt' is corrupt or not a torch file")
    assert not marker.exists()
    assert_nothing_written(out)


def test_mismatched_checkpoint(trained_run: Path, tmp_path: Path) -> None:
    last = trained_run / "checkpoints" / "last.pt"
    before = {path.name: path.read_bytes() for path in sorted(trained_run.rglob("*")) if path.is_file()}
    with pytest.raises(CheckpointError, match=r"cannot resume from '.*last\.pt': it belongs to another run \(seed: "
                                              r"checkpoint has 0, this run has 1\)\. Resume with the configuration"):
        train({**RUN_CONFIG, "seed": 1}, run_dir=trained_run, resume=True)
    with pytest.raises(CheckpointError, match=r"space\.kernel_sizes: checkpoint has \[3, 5\], this run has "
                                              r"\[3, 5, 7\]"):
        train({**RUN_CONFIG, "space": {**RUN_SPACE, "kernel_sizes": [3, 5, 7]}}, run_dir=trained_run, resume=True)
    after = {path.name: path.read_bytes() for path in sorted(trained_run.rglob("*")) if path.is_file()}
    assert after == before  # a refused resume changes nothing in the run directory (config.yaml included)
    # A supernet file whose weights belong to another space than the one it names.
    data = torch.load(trained_run / "supernet.pt", weights_only=True)
    other = load_supernet(last)  # same space...
    data["space"] = {**data["space"], "base_widths": [8, 8, 16, 24, 40, 48, 64]}  # ...but stage 3 named wider
    mixed = tmp_path / "mixed.pt"
    atomic_torch_save({**data, "state_dict": other.state_dict()}, mixed)
    with pytest.raises(CheckpointError, match=r"its weights do not fit the space it describes \(size mismatch for"):
        load_supernet(mixed)
    out = tmp_path / "out"
    code, _, err = run_cli(["nni", "search-space", "--supernet", str(mixed), "--out", str(out / "ss.json")], tmp_path)
    assert_one_line_error(code, err, "ofa-nni nni: error:", "mixed.pt': its weights do not fit the space",
                          "size mismatch for")
    assert_nothing_written(out)


def test_corrupt_predictor(tmp_path: Path) -> None:
    good = _predictor_file(TINY, tmp_path / "good.npz")
    assert AccuracyPredictor.load(good, arch_space=TINY).kind == "ridge"
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "empty.npz").write_bytes(b"")
    (corrupt / "garbage.npz").write_bytes(bytes(range(256)))
    (corrupt / "truncated.npz").write_bytes(good.read_bytes()[:200])
    np.savez(corrupt / "no-metadata.npz", weights=np.zeros(3))
    np.savez(corrupt / "list-metadata.npz", metadata=np.array(json.dumps([1, 2])))
    with np.load(good) as archive:
        arrays = {name: archive[name] for name in archive.files}
    np.savez(corrupt / "wrong-shape.npz", **{**arrays, "array.coef": np.zeros(7)})
    messages = {
        "empty.npz": "is not an ofa-nni accuracy predictor (not an .npz archive",
        "garbage.npz": "is not an ofa-nni accuracy predictor (not an .npz archive",
        "truncated.npz": "is not an ofa-nni accuracy predictor or is damaged (BadZipFile",
        "no-metadata.npz": "is not an ofa-nni accuracy predictor or is damaged (KeyError",
        "list-metadata.npz": "its metadata is not a JSON object",
        "wrong-shape.npz": "damaged accuracy predictor (ValueError",
    }
    for name, message in messages.items():
        with pytest.raises(ValueError, match=re.escape(message)):
            AccuracyPredictor.load(corrupt / name)
        code, _, err = run_cli(["predictor", "show", str(corrupt / name)], tmp_path)
        assert_one_line_error(code, err, "ofa-nni predictor: error:", str(corrupt / name), message)


def test_mismatched_predictor(supernet_file: Path, run_space: ArchSpace, tmp_path: Path) -> None:
    other = _predictor_file(TINY, tmp_path / "tiny.npz")  # TINY: resolutions 32/40, 4 classes
    with pytest.raises(ValueError, match=r"accuracy predictor .*tiny\.npz was built for another search space "
                                         r"\(.*num_classes: file has 4, space has 10.*resolutions: file has "
                                         r"\[32, 40\], space has \[16, 20\]"):
        AccuracyPredictor.load(other, arch_space=run_space)
    # CLI: the NNI trial with --predictor of another space refuses before evaluating anything.
    arch = run_space.format(run_space.max_sample())
    code, out, err = run_cli(["--supernet", str(supernet_file), "--predictor", str(other), "--arch", arch], tmp_path,
                             module="strategies.nni_trial")
    assert_one_line_error(code, err, "nni_trial: error: accuracy predictor", "was built for another search space",
                          "num_classes: file has 4, space has 10")
    assert "default" not in out  # no metric reported


def test_corrupt_latency_table(latency_table_file: Path, tmp_path: Path) -> None:
    text = latency_table_file.read_text()
    data = json.loads(text)
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "empty.json").write_text("")
    (corrupt / "truncated.json").write_text(text[: len(text) // 2])
    (corrupt / "binary.json").write_bytes(bytes(range(128, 256)))
    (corrupt / "no-entries.json").write_text(json.dumps({k: v for k, v in data.items() if k != "entries"}))
    first = next(iter(data["entries"]))
    nan_entry = {**data, "entries": {**data["entries"], first: {**data["entries"][first], "ms": float("nan"),
                                                                 "min_ms": float("nan")}}}
    (corrupt / "nan-entry.json").write_text(json.dumps(nan_entry))
    without_first = dict(list(data["entries"].items())[1:])
    (corrupt / "missing-entry.json").write_text(json.dumps({**data, "entries": without_first}))
    messages = {
        "empty.json": "is not a latency table (invalid JSON: Expecting value: line 1 column 1",
        "truncated.json": "is not a latency table (invalid JSON:",
        "binary.json": "is not a latency table (not JSON text: byte 0 is not UTF-8)",
        "no-entries.json": "damaged latency table (KeyError: 'entries')",
        "nan-entry.json": f"entries.{first}.ms is nan (float); a time must be a finite number >= 0",
        "missing-entry.json": f"latency table has no entry '{first}' (incomplete or for another space)",
    }
    for name, message in messages.items():
        with pytest.raises(ValueError, match=re.escape(message)):
            LatencyTable.load(corrupt / name)
        code, _, err = run_cli(["lut", "show", str(corrupt / name)], tmp_path)
        assert_one_line_error(code, err, "ofa-nni lut: error:", str(corrupt / name), message)


def _tampered(data: dict[str, Any], path: Path, **changes: Any) -> Path:
    path.write_text(json.dumps({**data, **changes}))
    return path


def test_tampered_latency_table(latency_table_file: Path, tmp_path: Path) -> None:
    """Files that parse but hold what no build writes: each refused at load, naming the file and field."""
    data = json.loads(latency_table_file.read_text())
    first = next(iter(data["entries"]))
    entry = data["entries"][first]
    settings = data["settings"]
    linear = {"kind": "linear", "scale": 1.0, "offset_ms": 0.0, "applied": True}
    tampered = tmp_path / "tampered"
    tampered.mkdir()
    cases = {
        "negative-scale.json": ({"correction": {**linear, "scale": -1.0}},
                                "correction.scale is -1.0; an applied correction needs scale > 0"),
        "negative-prediction.json": ({"correction": {**linear, "offset_ms": -1e6}},
                                     "for the smallest subnet; a latency must be > 0"),
        "correction-without-keys.json": ({"correction": {}},
                                         "correction lacks kind, scale, offset_ms, applied"),
        "correction-list.json": ({"correction": [1, 2]}, "correction must be an object"),
        "bogus-statistic.json": ({"settings": {**settings, "statistic": "bogus"}},
                                 "settings.statistic is 'bogus'; allowed: median, min"),
        "bogus-clock.json": ({"settings": {**settings, "clock": "sundial"}},
                             "settings.clock is 'sundial'; allowed: wall, cpu"),
        "string-time.json": ({"entries": {**data["entries"], first: {**entry, "min_ms": "0.5"}}},
                             f"entries.{first}.min_ms is '0.5' (str); a time must be a finite number >= 0"),
        "boolean-time.json": ({"entries": {**data["entries"], first: {**entry, "ms": True}}},
                              f"entries.{first}.ms is True (bool); a time must be a finite number >= 0"),
        "duplicate-resolutions.json": ({"resolutions": {**data["resolutions"], "measured": [32, 32]}},
                                       "resolutions.measured [32, 32] must be a non-empty set of distinct "
                                       "resolutions of the space's [32, 40] (repeated: [32])"),
    }
    predictor = _predictor_file(TINY, tmp_path / "predictor.npz")
    for name, (changes, message) in cases.items():
        path = _tampered(data, tampered / name, **changes)
        with pytest.raises(ValueError, match=re.escape(message)):
            LatencyTable.load(path)
        code, _, err = run_cli(["lut", "show", str(path)], tmp_path)
        assert_one_line_error(code, err, "ofa-nni lut: error:", str(path), message)
        out = tmp_path / "out"
        code, _, err = run_cli(["search", "--predictor", str(predictor), "--lut", str(path), "--target",
                                "latency_ms<=5", "--out", str(out / "search.json"), "--quiet"], tmp_path)
        assert_one_line_error(code, err, "ofa-nni search: error:", str(path), message)
        assert_nothing_written(out)


def test_damaged_lut_progress_file(tmp_path: Path) -> None:
    """A progress file of another shape is named with what it should hold; the build writes nothing."""
    out = tmp_path / "out"
    out.mkdir()
    partial = out / "lut.json.partial.json"
    cases = {
        "[1, 2, 3]": "is not a latency-table progress file (expected an object with format "
                     "'ofa-nni-latency-table-progress', got list); delete it",
        '{"format": "ofa-nni-latency-table-progress", "settings": [], "timings": {}}':
            "settings and timings must be objects; delete the file",
        "not json": "is not a latency-table progress file (Expecting value",
    }
    for text, message in cases.items():
        partial.write_text(text)
        code, _, err = run_cli(["lut", "build", "--preset", "cpu", "--resolutions", "24", "--repeats", "1",
                                "--rounds", "1", "--validate", "0", "--quiet", "--out", str(out / "lut.json")],
                               tmp_path)
        assert_one_line_error(code, err, "ofa-nni lut: error:", str(partial), message)
        assert_nothing_written(out, {"lut.json.partial.json"})
        assert partial.read_text() == text


def test_concurrent_lut_builds(tmp_path: Path) -> None:
    """A second build into the output of a running one is refused at once, naming the first's PID;
    once the first is gone (killed: the kernel drops its lock), a build into that file runs."""
    out = tmp_path / "lut.json"
    lock = tmp_path / ".lut.json.lock"
    command = ["lut", "build", "--preset", "cpu", "--num-classes", "10", "--resolutions", "32", "--warmup", "0",
               "--rounds", "1", "--threads", "1", "--validate", "0", "--quiet", "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    # Long enough to be running whatever the machine's load: it is killed once the second is refused.
    first = subprocess.Popen([sys.executable, "-m", "ofa_nni.cli", *command, "--repeats", "100000"], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 600  # starting an interpreter that imports torch takes minutes on a busy machine
        while not (lock.exists() and lock.read_text().strip()) and first.poll() is None:
            assert time.monotonic() < deadline, "the first build never took its lock"
            time.sleep(0.05)
        assert first.poll() is None, first.communicate()
        code, _, err = run_cli([*command, "--repeats", "100000"], tmp_path)
        assert_one_line_error(code, err, "ofa-nni lut: error:", str(out), f"another ofa-nni process (PID {first.pid}")
    finally:
        first.kill()
        first.wait()
    assert not out.exists()
    (tmp_path / "lut.json.partial.json").unlink(missing_ok=True)  # the killed build's progress (other settings)
    code, _, err = run_cli([*command, "--repeats", "1"], tmp_path)
    assert code == 0, err
    assert len(LatencyTable.load(out).entries) > 0 and not lock.exists()


def test_mismatched_latency_table(latency_table_file: Path, tmp_path: Path) -> None:
    other = ArchSpace(**{**TINY_SPACE_KWARGS, "num_classes": 10})
    with pytest.raises(ValueError, match=r"latency table .*lut\.json was built for another search space \(num_classes: "
                                         r"file has 4, space has 10\)"):
        LatencyTable.load(latency_table_file, arch_space=other)
    # CLI: a search whose predictor and latency table belong to different spaces.
    predictor = _predictor_file(other, tmp_path / "predictor.npz")
    out = tmp_path / "out"
    code, _, err = run_cli(["search", "--predictor", str(predictor), "--lut", str(latency_table_file), "--target",
                            "latency_ms<=5", "--out", str(out / "search.json"), "--quiet"], tmp_path)
    assert_one_line_error(code, err, "ofa-nni search: error:", "was built for another search space",
                          "num_classes: file has 4, space has 10")
    assert_nothing_written(out)
    # NNI: the tuner's classArgs name a table of another space; the experiment stops with the message.
    tuner = OFAEvolutionTuner(space=TUNER_SPACE, latency_table=str(latency_table_file), constraints={"latency_ms": 5.0})
    with pytest.raises(ValueError, match=r"was built for another search space \(.*resolutions: file has \[32, 40\], "
                                         r"space has \[16, 20\]"):
        tuner.update_search_space(nni_search_space(arch_space_of(TUNER_SPACE)))


def arch_space_of(spec: dict[str, Any]) -> ArchSpace:
    from ofa_nni.nni_search_space import arch_space_from_spec

    return arch_space_from_spec(spec)


def test_infeasible_constraint(tmp_path: Path) -> None:
    costs = AnalyticCostModel(TINY)
    smallest = costs.macs(TINY.min_sample())
    message = rf"budget 1000 for 'macs' is infeasible: the smallest achievable macs is {smallest} \(subnet r32_k3e2"
    with pytest.raises(ValueError, match=message):
        EvolutionSearch(arch_space=TINY, costs={"macs": costs.macs}, targets={"macs": 1000})
    with pytest.raises(ValueError, match=message):
        specialize(TINY, lambda rows: np.zeros(len(rows)), {"macs": costs.macs}, [{"macs": 1e9}, {"macs": 1000}])
    with pytest.raises(ValueError, match=message):
        OFAEvolutionSampler(arch_space=TINY, costs={"macs": costs.macs}, budgets={"macs": 1000})
    with pytest.raises(ValueError, match=r"budget for 'macs' is NaN"):
        EvolutionSearch(arch_space=TINY, costs={"macs": costs.macs}, targets={"macs": float("nan")})
    tuner = OFAEvolutionTuner(space=TUNER_SPACE, constraints={"macs": 1000})
    with pytest.raises(ValueError, match=r"budget 1000 for 'macs' is infeasible: the smallest achievable macs is"):
        tuner.update_search_space(nni_search_space(arch_space_of(TUNER_SPACE)))
    # CLI: a target no subnet can meet.
    predictor = _predictor_file(TINY, tmp_path / "predictor.npz")
    out = tmp_path / "out"
    code, _, err = run_cli(["search", "--predictor", str(predictor), "--target", "macs<=1000", "--out",
                            str(out / "search.json"), "--quiet"], tmp_path)
    assert_one_line_error(code, err, "ofa-nni search: error:", "is infeasible", f"the smallest achievable macs is "
                          f"{smallest}")
    assert_nothing_written(out)


def _macs_score(space: ArchSpace) -> Any:
    costs = AnalyticCostModel(space)
    largest = costs.macs(space.max_sample())
    return lambda sample: costs.macs(sample) / largest


def test_nan_metric_from_trial(caplog: pytest.LogCaptureFixture) -> None:
    # Optuna: an objective returning NaN. Optuna stores the trial as FAILED; the sampler goes on, never
    # proposes that subnet again and never breeds from it, and it is never the best trial.
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    score = _macs_score(TINY)
    sampler = OFAEvolutionSampler(arch_space=TINY, seed=0, n_startup_trials=4, population_size=8, num_parents=2)
    study = optuna.create_study(direction="maximize", sampler=sampler)

    def objective(trial: optuna.Trial) -> float:
        sample = suggest_sample(trial, TINY)
        return float("nan") if trial.number % 3 == 0 else score(sample)

    study.optimize(objective, n_trials=24)
    failed = [t for t in study.trials if t.state == optuna.trial.TrialState.FAIL]
    assert len(study.trials) == 24 and len(failed) == 8
    archs = [t.user_attrs["arch"] for t in study.trials]
    assert len(set(archs)) == len(archs)  # no subnet proposed twice, NaN ones included
    assert study.best_trial.state == optuna.trial.TrialState.COMPLETE and not math.isnan(study.best_value)
    done_rows, done_values, _, tried_rows = sampler._history(study, study.trials, study.trials[-1])
    failed_rows = {TINY.format(trial_sample(t, TINY)) for t in failed}
    assert failed_rows <= {TINY.format(TINY.from_indices(row)) for row in tried_rows}
    assert not failed_rows & {TINY.format(TINY.from_indices(row)) for row in done_rows}  # never a parent
    assert np.isfinite(done_values).all()
    # Optuna's ask/tell interface: telling NaN fails the trial the same way.
    trial = study.ask()
    suggest_sample(trial, TINY)
    assert study.tell(trial, float("nan")).state == optuna.trial.TrialState.FAIL
    # The search engine itself: a NaN score is a failed evaluation, archived and never chosen.
    search = EvolutionSearch(arch_space=TINY, costs={"macs": AnalyticCostModel(TINY).macs}, targets={"macs": 1e9},
                             population_size=4, generations=3, seed=0)
    rows = search.ask()
    search.tell(rows, np.where(np.arange(len(rows)) == 0, np.nan, 0.5))
    assert search.result()[0].score == 0.5
    # NNI: a NaN, a None, a non-number and a dict without 'default' all mean a failed evaluation.
    tuner = OFAEvolutionTuner(space=TUNER_SPACE, population_size=4, seed=0)
    tuner.update_search_space(nni_search_space(tuner.arch_space))
    parameters = tuner.generate_multiple_parameters([0, 1, 2, 3])
    metrics = [{"default": float("nan")}, None, {"default": "0.9"}, {"accuracy": 0.9}]
    for parameter_id, (sample, metric) in enumerate(zip(parameters, metrics, strict=True)):
        tuner.receive_trial_result(parameter_id, sample, metric)
        tuner.trial_end(parameter_id, True)
    assert len(tuner.scores) == 4 and all(math.isnan(s) for s in tuner.scores.values())
    assert "reported no usable 'default'" in caplog.text
    for parameter_id in range(4, 12):  # the search goes on; failed subnets are never selected
        (sample,) = tuner.generate_multiple_parameters([parameter_id])
        tuner.receive_trial_result(parameter_id, sample, {"default": _macs_score(tuner.arch_space)(sample),
                                                          "arch": tuner.arch_space.format(sample)})
        tuner.trial_end(parameter_id, True)
    best = tuner.search.result()[0]
    assert not math.isnan(best.score) and not math.isnan(tuner.scores[tuner.canonical_arch(best.sample)])


def test_crashing_trial() -> None:
    # Optuna: an objective that raises. With catch=..., Optuna marks it FAILED and goes on; the sampler
    # does not propose the crashed subnet again (it may crash again) and keeps evolving.
    optuna.logging.set_verbosity(optuna.logging.CRITICAL)
    score = _macs_score(TINY)
    study = optuna.create_study(direction="maximize", sampler=OFAEvolutionSampler(arch_space=TINY, seed=0,
                                                                                n_startup_trials=4))

    def objective(trial: optuna.Trial) -> float:
        sample = suggest_sample(trial, TINY)
        if trial.number % 4 == 1:
            raise RuntimeError("out of memory while evaluating")
        return score(sample)

    study.optimize(objective, n_trials=20, catch=(RuntimeError,))
    states = [t.state for t in study.trials]
    assert states.count(optuna.trial.TrialState.FAIL) == 5 and states.count(optuna.trial.TrialState.COMPLETE) == 15
    archs = [t.user_attrs["arch"] for t in study.trials]
    assert len(set(archs)) == 20
    # Without catch=, Optuna re-raises the trial's exception to the caller, as documented.
    with pytest.raises(RuntimeError, match="out of memory"):
        study.optimize(objective, n_trials=4)
    # NNI: a trial that crashed ends with success=False and no metric. The tuner keeps serving trials;
    # the crashed subnet is recorded as failed (not lost) once no trial can still report it.
    tuner = OFAEvolutionTuner(space=TUNER_SPACE, population_size=4, seed=0)
    tuner.update_search_space(nni_search_space(tuner.arch_space))
    handed: list[Any] = []

    def callback(parameter_id: int, parameters: Any) -> None:
        handed.append((parameter_id, parameters))

    handed.extend(zip([0, 1], tuner.generate_multiple_parameters([0, 1], st_callback=callback), strict=True))
    crashed = tuner.canonical_arch(handed[0][1])
    tuner.trial_end(0, False)  # crashed: no metric
    assert crashed not in tuner.scores  # trial 1 still runs (under NNI's mix-ups it might report it)
    sample = handed[1][1]
    tuner.receive_trial_result(1, sample, {"default": 0.5, "arch": tuner.arch_space.format(sample)})
    tuner.trial_end(1, True)
    assert math.isnan(tuner.scores[crashed])
    next_id = 2
    while len(tuner.scores) < 12:
        handed.extend(zip([next_id], tuner.generate_multiple_parameters([next_id], st_callback=callback), strict=False))
        parameter_id, sample = handed[-1]
        tuner.receive_trial_result(parameter_id, sample, {"default": 0.5, "arch": tuner.arch_space.format(sample)})
        tuner.trial_end(parameter_id, True)
        next_id += 1
    assert len({tuner.canonical_arch(s) for _, s in handed}) == len(handed)  # nothing proposed twice


INVALID_CONFIGS = {
    "syntax error": ("data:\n  batch_size: 32\n kind: digits\n", ["train.yaml:3:2: not valid YAML"]),
    "duplicate key": ("seed: 0\nseed: 1\n", ["train.yaml:2:1: not valid YAML: key 'seed' is given twice"]),
    "not UTF-8": (b"seed: \xff\n", ["train.yaml: not a YAML text file (byte 6 is not UTF-8)"]),
    "unknown key": ("data: {bach_size: 32}\n", ["data.bach_size: unknown key", "allowed in data: ['batch_size'"]),
    "wrong type": ("data: {batch_size: sixty}\n", ["data.batch_size: expected an int, got 'sixty'"]),
    "out of range": ("optimizer: {momentum: 1.5}\n", ["optimizer.momentum: 1.5 is out of range; allowed: [0, 1)"]),
    "not finite": ("strategy: {epochs_factor: .nan}\n", ["strategy.epochs_factor: expected a finite number, got nan"]),
    "invalid space": ("space: {kernel_sizes: [3, 4]}\n", ["space: kernel_sizes must be odd, got (3, 4)"]),
}


@pytest.mark.parametrize("case", list(INVALID_CONFIGS))
def test_invalid_yaml_config(case: str, tmp_path: Path) -> None:
    text, expected = INVALID_CONFIGS[case]
    config = tmp_path / "train.yaml"
    config.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(ConfigError) as error:
        load_config(config)
    for part in expected:
        assert part in str(error.value)
    run_dir = tmp_path / "run"
    code, _, err = run_cli(["train", "--config", str(config), "--run-dir", str(run_dir)], tmp_path)
    assert_one_line_error(code, err, "ofa-nni train: error:", *expected)
    assert not run_dir.exists()
    assert_nothing_written(tmp_path, {"train.yaml"})
    if case == "syntax error":  # the forked runner behaves as the interpreter running the module
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        process = subprocess.run([sys.executable, "-m", "ofa_nni.cli", "train", "--config", str(config), "--run-dir",
                                  str(run_dir)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
        assert (process.returncode, process.stderr) == (code, err)


# ------------------------------------------------------- data and predictors (issues 14 and 16, branch data)
# entry                          where it is raised                                   test
# -----------------------------  ---------------------------------------------------  ---------------------------------
# predictor declaring more than  _npz.check_npz_sizes (array headers vs stored bytes); test_predictor_declaring_more_
#   it holds                     MLPEnsemblePredictor.check_stored (num_models)         than_it_holds
# accuracy outside [0, 1]        AccuracyDataset.load / __init__; AccuracyPredictor.fit test_accuracy_outside_0_1
# bad .npz data file             data.numpy_arrays (ofa-nni demo --data, data.kind npz) test_bad_npz_data_file
# unreadable image in a folder   data._read_image (the ImageFolder loader)              test_unreadable_image_in_
#                                                                                       image_folder
# batch larger than the data     data.check_batch_size (runner.train)                   test_batch_larger_than_the_
#                                                                                       data_set
# non-int class count            data.cifar (num_classes=10.0)                          test_non_int_class_count
def _npz_arrays(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as archive:
        return {name: archive[name] for name in archive.files}


def test_predictor_declaring_more_than_it_holds(tmp_path: Path) -> None:
    from ofa_nni.accuracy import MLPEnsemblePredictor

    good = tmp_path / "ensemble.npz"
    ensemble = MLPEnsemblePredictor(arch_space=TINY, num_models=2, steps=5)
    rows = TINY.random_indices(20, 0)
    ensemble.fit(TINY.to_features(rows), 0.5 + 0.01 * rows.sum(axis=1))
    ensemble.save(good)
    bad = tmp_path / "bad"
    bad.mkdir()
    arrays = _npz_arrays(good)
    metadata = json.loads(str(arrays["metadata"]))
    metadata["settings"]["num_models"] = 10**9  # a 7 KB file declaring a billion MLPs
    np.savez(bad / "billion.npz", **{**arrays, "metadata": np.array(json.dumps(metadata))})
    # An array whose header declares 10^12 float64 (8 TB) while the file holds 80 bytes.
    import io
    import zipfile

    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False, "shape": (10**12,)})
    with zipfile.ZipFile(bad / "huge-array.npz", "w") as archive:
        for name, value in arrays.items():
            if name != "array.m0.base_logit":
                with archive.open(f"{name}.npy", "w") as member:
                    np.lib.format.write_array(member, value)
        archive.writestr("array.m0.base_logit.npy", header.getvalue() + bytes(80))
    messages = {"billion.npz": "num_models 1000000000 does not match the 2 models stored",
                "huge-array.npz": "declares shape (1000000000000,) of float64 (8,000,000,000,000 bytes)"}
    out = tmp_path / "out"
    for name, message in messages.items():
        with pytest.raises(ValueError, match=re.escape(message)):
            AccuracyPredictor.load(bad / name)
        code, _, err = run_cli(["predictor", "show", str(bad / name)], tmp_path)
        assert_one_line_error(code, err, "ofa-nni predictor: error:", str(bad / name), message)
        code, _, err = run_cli(["search", "--predictor", str(bad / name), "--target", "macs<=1M", "--quiet",
                                "--out", str(out / "search.json")], tmp_path)
        assert_one_line_error(code, err, "ofa-nni search: error:", str(bad / name), message)
    assert_nothing_written(out)


def test_accuracy_outside_0_1(tmp_path: Path) -> None:
    rows = TINY.random_indices(6, 0)
    archs = [TINY.format(TINY.from_indices(row)) for row in rows]
    header = {"format": "ofa-nni-accuracy-dataset", "format_version": 1, "space": TINY.signature(), "seed": 0,
              "num_subnets": 6, "archs": archs, "data": "test", "calibration": {"num_batches": None}}
    records = [{"arch": arch, "indices": row.tolist(), "accuracy": 0.5, "loss": 1.0, "num_images": 10,
                "seconds": 0.1} for arch, row in zip(archs, rows, strict=True)]
    records[2]["accuracy"] = 50.0  # a percentage where a fraction belongs
    path = tmp_path / "percent.subnets.jsonl"
    path.write_text("".join(json.dumps(item) + "\n" for item in [header, *records]))
    with pytest.raises(ValueError, match=r"has accuracy 50\.0; accuracies are fractions in \[0, 1\]"):
        AccuracyDataset.load(path)
    with pytest.raises(ValueError, match=r"accuracies must be fractions in \[0, 1\]"):
        AccuracyDataset(arch_space=TINY, indices=rows, accuracies=np.array([0.5, 0.5, 50.0, 0.5, 0.5, 0.5]))
    out = tmp_path / "out"
    code, _, err = run_cli(["predictor", "build", "--dataset", str(path), "--out", str(out / "p.npz")], tmp_path)
    assert_one_line_error(code, err, "ofa-nni predictor: error:", str(path), f"subnet {archs[2]!r} has accuracy 50.0")
    assert_nothing_written(out)


def test_bad_npz_data_file(tmp_path: Path) -> None:
    files = tmp_path / "files"
    files.mkdir()
    labels = np.repeat(np.arange(2), 10)
    np.savez(files / "no-labels.npz", x_train=np.zeros((20, 8, 8), np.uint8))
    np.savez(files / "flat.npz", x_train=np.zeros((20, 64), np.uint8), y_train=labels)
    np.savez(files / "percent.npz", x_train=np.full((20, 8, 8), 50.0), y_train=labels)
    (files / "text.npz").write_text("not numpy")
    messages = {"no-labels.npz": "lacks ['y_train']", "flat.npz": "x_train has shape (20, 64)",
                "percent.npz": "holds floats outside [0, 1]", "text.npz": "is not an .npz archive",
                "missing.npz": "does not exist"}
    for name, message in messages.items():
        run_dir = tmp_path / "runs" / name
        code, _, err = run_cli(["demo", "--quick", "--no-progress", "--data", str(files / name),
                                "--run-dir", str(run_dir)], tmp_path)
        assert_one_line_error(code, err, "ofa-nni demo: error:", str(files / name), message, "expected an .npz")
        assert not run_dir.exists()  # refused before the run directory is made


def test_unreadable_image_in_image_folder(tmp_path: Path) -> None:
    from PIL import Image

    root = tmp_path / "images"
    for split in ("train", "val"):
        for name in ("a", "b"):
            (root / split / name).mkdir(parents=True)
            for i in range(3):
                Image.new("RGB", (12, 12), (40 * i, 0, 0)).save(root / split / name / f"{i}.png")
    good = load_data("imagefolder", root=root, resolution=16, calibration_images=4)
    assert good.train[0][0].shape == (3, 16, 16)
    (root / "train" / "a" / "notes.png").write_text("a text file named like an image")
    noise = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    Image.fromarray(noise).save(tmp_path / "noise.png")
    (root / "train" / "b" / "cut.png").write_bytes((tmp_path / "noise.png").read_bytes()[:1500])  # cut mid-pixels
    data = load_data("imagefolder", root=root, resolution=16, calibration_images=4)
    names = [Path(path).name for path, _ in data.train.samples]  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match=r"notes\.png' is not a readable image \(PIL does not recognise"):
        data.train[names.index("notes.png")]
    with pytest.raises(ValueError, match=r"cut\.png' is not a readable image \(OSError: .*truncated"):
        data.train[names.index("cut.png")]
    config = {**RUN_CONFIG, "data": {"kind": "imagefolder", "root": str(root), "batch_size": 4,
                                     "calibration_images": 4}}
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump(config))
    run_dir = tmp_path / "run"
    code, _, err = run_cli(["train", "--config", str(config_path), "--run-dir", str(run_dir)], tmp_path)
    # The error comes at the batch that holds the file (mid-run: Lightning's banners precede it).
    assert code == 2 and "Traceback" not in err, err
    last = [line for line in err.splitlines() if line.strip()][-1]
    assert last.startswith("ofa-nni train: error: image folder file ") and "is not a readable image" in last
    assert not (run_dir / "supernet.pt").exists()


def test_batch_larger_than_the_data_set(tmp_path: Path) -> None:
    config = {**RUN_CONFIG, "data": {"kind": "digits", "batch_size": 5000, "calibration_images": 32}}
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump(config))
    run_dir = tmp_path / "run"
    code, _, err = run_cli(["train", "--config", str(config_path), "--run-dir", str(run_dir)], tmp_path)
    assert_one_line_error(code, err, "ofa-nni train: error:", "data.batch_size 5000 is larger than the 1438 training "
                          "images of digits; allowed: 1..1438")
    assert not run_dir.exists()


def test_non_int_class_count(tmp_path: Path) -> None:
    from ofa_nni.data import cifar

    for bad in (10.0, True, "10"):
        message = f"CIFAR has 10 or 100 classes (an int), got num_classes={bad!r}"
        with pytest.raises(ValueError, match=re.escape(message)):
            cifar(tmp_path, num_classes=bad)  # type: ignore[arg-type]


# ---------------------------------------------------------------- issue 16: reliability
# Outputs that cannot or must not be written, runs that collide, diverge or lack what they resume,
# documents that were damaged, sizes read from small files: each is one line (exit 2) and leaves
# every earlier file as it was.
def _snapshot(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def _export_args(supernet_file: Path, space: ArchSpace, out: Path, *extra: str) -> list[str]:
    return ["export", "--supernet", str(supernet_file), "--arch", space.format(space.max_sample()), "--out-dir",
            str(out), "--no-latency", "--calibration-images", "32", "--quiet", *extra]


def test_failed_reexport_leaves_the_earlier_export(supernet_file: Path, run_space: ArchSpace, tmp_path: Path) -> None:
    out = tmp_path / "exports"
    code, _, err = run_cli(_export_args(supernet_file, run_space, out), tmp_path)
    assert code == 0, err
    earlier = _snapshot(out)
    assert sorted(earlier) == ["exports.json", "subnet1.onnx", "subnet1.pt"]
    # --atol 0: the ONNX file differs from PyTorch by ~1e-6, after the TorchScript file was written.
    code, _, err = run_cli(_export_args(supernet_file, run_space, out, "--atol", "0"), tmp_path)
    assert_one_line_error(code, err, "ofa-nni export: error: onnx export of", "differs from PyTorch by", "> atol 0")
    assert _snapshot(out) == earlier  # the earlier model files and the exports.json listing them, unchanged
    assert sorted(p.name for p in out.iterdir()) == sorted(earlier)  # no staging folder left
    # --calibration-images 0 used to mean the default (500) silently.
    code, _, err = run_cli(_export_args(supernet_file, run_space, out)[:-3] + ["--calibration-images", "0"], tmp_path)
    assert_one_line_error(code, err, "--calibration-images must be >= 1, got 0")
    assert _snapshot(out) == earlier


def test_special_output_paths_are_refused(tmp_path: Path) -> None:
    cases = special_output_paths(tmp_path)
    for path, message in cases.items():
        code, _, err = run_cli(["nni", "search-space", "--preset", "cpu", "--out", str(path)], tmp_path)
        assert_one_line_error(code, err, "ofa-nni nni: error:", str(path), message)
    link = next(iter(cases))
    assert link.is_symlink() and (tmp_path / "elsewhere.json").read_text() == "keep"
    assert os.path.exists("/dev/null") and not Path("/dev/null").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["elsewhere.json", "link.json", "fifo.json",
                                                                 "folder.json"])


def test_search_refuses_a_special_output_path_before_searching(run_space: ArchSpace, tmp_path: Path) -> None:
    """--out naming a directory (or link, FIFO, device) used to fail only after the whole search."""
    predictor = _predictor_file(run_space, tmp_path / "predictor.npz")
    for path, message in special_output_paths(tmp_path).items():
        code, out, err = run_cli(["search", "--predictor", str(predictor), "--target", "macs<=1G", "--population",
                                  "8", "--generations", "2", "--quiet", "--out", str(path)], tmp_path)
        assert_one_line_error(code, err, "ofa-nni search: error:", str(path), message)
        assert "predicted acc" not in out  # refused before the search printed its results


def test_full_and_read_only_outputs(supernet_file: Path, run_space: ArchSpace, small_filesystem: Any) -> None:
    from conftest import fill_filesystem

    folder, remount = small_filesystem
    work = folder.parent
    fill_filesystem(folder)
    filled = _snapshot(folder)
    code, _, err = run_cli(["nni", "search-space", "--preset", "cpu", "--out", str(folder / "ss.json")], work)
    assert_one_line_error(code, err, "ofa-nni nni: error: cannot write", "No space left on device")
    # Export used to abort (SIGABRT, a c10::Error from torch's own writer) and leave a .tmp file.
    code, _, err = run_cli(_export_args(supernet_file, run_space, folder / "exports"), work)
    assert_one_line_error(code, err, "ofa-nni export: error: cannot write", "No space left on device")
    assert _snapshot(folder) == filled and sorted(p.name for p in folder.iterdir()) == [".filler"]
    (folder / ".filler").unlink()
    remount("ro")
    code, _, err = run_cli(["nni", "search-space", "--preset", "cpu", "--out", str(folder / "ss.json")], work)
    assert_one_line_error(code, err, "ofa-nni nni: error: cannot write", "Read-only file system")
    assert list(folder.iterdir()) == []


def test_a_run_directory_in_use_is_refused(tmp_path: Path) -> None:
    from ofa_nni._artifacts import exclusive_lock

    config = tmp_path / "train.yaml"
    config.write_text(yaml.safe_dump(RUN_CONFIG))
    run = tmp_path / "run"
    with exclusive_lock(run, "run directory"):  # this process holds it, as a running 'ofa-nni train' would
        code, _, err = run_cli(["train", "--config", str(config), "--run-dir", str(run)], tmp_path)
    assert_one_line_error(code, err, f"run directory '{run}' is in use by another ofa-nni process (PID {os.getpid()}")
    assert not run.exists()


def test_resume_without_a_checkpoint_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "train.yaml"
    config.write_text(yaml.safe_dump(RUN_CONFIG))
    run = tmp_path / "run"
    code, _, err = run_cli(["train", "--config", str(config), "--run-dir", str(run), "--resume"], tmp_path)
    assert_one_line_error(code, err, f"--resume: '{run}' holds no checkpoint to continue",
                          "run without --resume to start a new run there")
    assert not run.exists()


def test_diverged_training_stops_and_nan_supernets_are_refused(supernet_file: Path, tmp_path: Path) -> None:
    # Progressive shrinking, one epoch per phase: the full network trains normally, then the kernel
    # phase's learning rate of 1e30 sends the weights to infinity.
    config = tmp_path / "train.yaml"
    config.write_text(yaml.safe_dump({**RUN_CONFIG, "strategy": {
        "name": "progressive_shrinking", "epochs_factor": 0.001, "phases": {"kernel": {"lr": 1.0e30}}},
        "trainer": {**RUN_CONFIG["trainer"], "limit_train_batches": 3}}))
    run = tmp_path / "run"
    code, _, err = run_cli(["train", "--config", str(config), "--run-dir", str(run)], tmp_path)
    # The run trained (Lightning's progress notes precede the error): the error is the one last line.
    err = err.strip().splitlines()[-1]
    line = assert_one_line_error(code, err, "ofa-nni train: error: training diverged in epoch 2 (phase 'kernel'): ",
                                 f"the last finite checkpoint, {run / 'checkpoints' / 'last.pt'}, is kept",
                                 "Lower the learning rate")
    assert "the training loss is nan" in line or "weights are not finite" in line, line
    assert not (run / "supernet.pt").exists()
    checkpoint = load_checkpoint(run / "checkpoints" / "last.pt")
    assert checkpoint["epochs_completed"] == 1 and checkpoint["phase_name"] == "full"
    assert all(bool(torch.isfinite(t).all()) for t in checkpoint["supernet"].values() if t.is_floating_point())
    # A supernet file with NaN weights (as the run used to write) is refused where it is read.
    data = torch.load(supernet_file, weights_only=True)
    data["state_dict"]["classifier.weight"][0, 0] = math.nan
    nan_file = tmp_path / "nan.pt"
    torch.save(data, nan_file)
    out = tmp_path / "out"
    code, _, err = run_cli(["nni", "search-space", "--supernet", str(nan_file), "--out", str(out / "ss.json")],
                           tmp_path)
    assert_one_line_error(code, err, f"supernet file '{nan_file}' holds 1 non-finite weights (NaN or inf)",
                          "'classifier.weight'", "diverged")
    assert_nothing_written(out)


def test_odd_values_in_files_and_arguments(supernet_file: Path, tmp_path: Path) -> None:
    from search_spaces import OFAMobileNetV3Space

    with pytest.raises(ValueError, match=r"stage_se must hold true/false per stage, got \('no', 'no', 'no', 'no', "
                                         r"'no'\)"):
        OFAMobileNetV3Space(stage_se=("no",) * 5)
    with pytest.raises(ValueError, match=r"bn_eps must be in \(0, 1\), got -1"):
        OFAMobileNetV3Space(bn_eps=-1)
    with pytest.raises(ValueError, match=r"bn_momentum must be in \[0, 1\], got 5"):
        OFAMobileNetV3Space(bn_momentum=5)
    out = tmp_path / "out"
    code, _, err = run_cli(["search", "--predictor", "p.npz", "--target", "macs<=1M", "--seed", str(2**70),
                            "--out", str(out / "s.json")], tmp_path)
    assert code == 2 and "Traceback" not in err
    assert err.strip().splitlines()[-1].endswith(f"argument --seed: {2**70} is out of range; allowed: 0 to "
                                                 "4294967295 (2**32 - 1)")
    # Sizes read from a file or an argument are bounded before anything is allocated.
    data = torch.load(supernet_file, weights_only=True)
    data["space"]["num_classes"] = 10**9  # a 5 KB edit that asked for 256 GB
    huge = tmp_path / "huge.pt"
    torch.save(data, huge)
    code, _, err = run_cli(["nni", "search-space", "--supernet", str(huge), "--out", str(out / "ss.json")], tmp_path)
    assert_one_line_error(code, err, f"'{huge}': its weights do not fit the space it describes",
                          "size mismatch for classifier.weight")
    code, _, err = run_cli(["search", "--predictor", "p.npz", "--target", "macs<=1M", "--population", "100000000",
                            "--out", str(out / "s.json")], tmp_path)
    assert_one_line_error(code, err, "--population must be in [2, 100,000], got 100,000,000")
    assert_nothing_written(out)


def _search_document(space: ArchSpace) -> dict[str, Any]:
    from ofa_nni.app.documents import SearchDocument

    sample = space.max_sample()
    return SearchDocument.create(
        space=space.signature(), predictor={"path": "p.npz", "kind": "ridge", "metrics": None}, latency_table=None,
        costs={"macs": "MACs"}, settings={"population_size": 4, "generations": 1, "seed": 0, "evaluations": 4},
        targets=[{"name": "macs<=1M", "budgets": {"macs": 1e6}, "arch": space.format(sample), "sample": sample,
                  "score": 0.5, "costs": {"macs": 1e5, "params": 1e4}}],
        pareto=None).to_dict()


def test_damaged_documents(supernet_file: Path, run_space: ArchSpace, tmp_path: Path) -> None:
    good = _search_document(run_space)
    del good["targets"][0]["score"]
    no_score = tmp_path / "no-score.json"
    no_score.write_text(json.dumps(good))
    wrong_type = tmp_path / "wrong-type.json"
    wrong_type.write_text(json.dumps({**_search_document(run_space), "settings": [4, 1, 0]}))
    out = tmp_path / "out"
    for path, key, message in ((no_score, "targets[0].score", "missing"),
                               (wrong_type, "settings", "expected an object, got [4, 1, 0]")):
        code, _, err = run_cli(["export", "--supernet", str(supernet_file), "--search", str(path), "--out-dir",
                                str(out), "--quiet"], tmp_path)
        assert_one_line_error(code, err, f"ofa-nni export: error: {path}: {key}: {message}", "'ofa-nni/search'")
        code, _, err = run_cli(["report", str(path), "--out", str(out / "report.md")], tmp_path)
        assert_one_line_error(code, err, f"ofa-nni report: error: {path}: {key}: {message}")
    search = tmp_path / "search.json"
    search.write_text(json.dumps(_search_document(run_space)))
    exports = tmp_path / "exports.json"
    exports.write_text(json.dumps({"kind": "ofa-nni/exports", "format_version": 1, "space": run_space.signature(),
                                   "supernet": "s.pt", "search": None, "data": None, "calibration_images": 1,
                                   "latency": {"description": None}, "atol": 1e-4, "subnets": [{"name": "x"}]}))
    code, _, err = run_cli(["report", str(search), str(exports), "--out", str(out / "report.md")], tmp_path)
    assert_one_line_error(code, err, f"{exports}: subnets[0].arch: missing", "'ofa-nni/exports'")
    demo = tmp_path / "demo"
    demo.mkdir()
    (demo / "results.json").write_text(json.dumps({"kind": "ofa-nni/demo", "run_dir": str(demo), "targets": 3}))
    code, _, err = run_cli(["report", str(demo), "--out", str(out / "report.md")], tmp_path)
    assert_one_line_error(code, err, f"{demo / 'results.json'}: date: missing", "'ofa-nni/demo'")
    assert_nothing_written(out)


@pytest.mark.parametrize("trainer, message", [
    ({"accelerator": "tpu"}, "trainer: Lightning refuses accelerator 'tpu', devices 1"),
    ({"devices": "abc"}, "trainer: Lightning refuses accelerator 'cpu', devices 'abc'"),
    ({"limit_train_batches": 0.001}, "trainer.limit_train_batches: 0.001 of 44 batches is less than one batch; "
                                     "allowed: a fraction >= 0.0227 or a number of batches >= 1"),
])
def test_trainer_settings_lightning_refuses(trainer: dict[str, Any], message: str, tmp_path: Path) -> None:
    config = tmp_path / "train.yaml"
    config.write_text(yaml.safe_dump({**RUN_CONFIG, "trainer": {**RUN_CONFIG["trainer"], **trainer}}))
    code, _, err = run_cli(["train", "--config", str(config), "--run-dir", str(tmp_path / "run")], tmp_path)
    assert_one_line_error(code, err, "ofa-nni train: error:", message)
    assert not (tmp_path / "run").exists()
