"""``ofa-nni demo``: the whole Once-for-All flow on the offline embedded default, on a CPU.

1. Train once: progressive shrinking of a CPU-sized space on scikit-learn's digits (or the user's
   ``.npz``: ``DemoSettings.data``, ``ofa-nni demo --data PATH.npz``).
2. Measure: an accuracy data set of BN-recalibrated subnets and the predictor built from it;
   this machine's latency lookup table, validated end to end.
3. Specialize: one predictor-guided search for several latency targets, and the Pareto front.
4. Deploy: every chosen subnet frozen, BN-recalibrated, exported to TorchScript and ONNX (each
   checked against PyTorch), its held-out accuracy and real latency measured.
5. Cost: every phase's time and energy; training one network from scratch for comparison, so the
   report can set "train once + specialize N" against "train N networks separately".

Everything lands in a run directory: the supernet, the data set, the predictor, the latency table,
the exports, ``pareto.png``, ``report.md`` and ``results.json``. Re-running with the same run
directory reuses every finished step (the training and the accuracy data set resume where they
stopped).
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ofa_nni._artifacts import atomic_write, atomic_write_json, exclusive_lock
from ofa_nni._predictor_verdict import predictor_verdict_lines
from ofa_nni.app.carbon import CostMeter, PhaseCost
from ofa_nni.app.documents import DemoResults
from ofa_nni.app.report import demo_pareto_plot, demo_report_markdown
from ofa_nni.errors import InvalidInputError

__all__ = ["DemoSettings", "DemoResult", "run_demo"]


@dataclasses.dataclass(frozen=True)
class DemoSettings:
    """What the demo does (defaults: the README's run, about 5-10 minutes on 2 CPU cores)."""

    num_targets: int = 3
    accuracy_subnets: int = 200
    latency_validation_subnets: int = 20
    search_generations: int = 60
    population_size: int = 100
    scratch_epochs: int | None = None
    """Epochs of the from-scratch comparison (default: the full-network phase's epochs)."""
    train_epochs_factor: float | None = None
    """Scale the training schedule (default: the demo configuration's)."""
    seed: int = 0
    show_progress: bool = True
    data: str | None = None
    """An ``.npz`` of images and labels (``ofa_nni.data.NPZ_LAYOUT``) instead of digits."""
    space: str = "ofa-mbv3"
    """The search space, by its registered name: the demo trains that space's ``cpu`` preset."""

    def __post_init__(self) -> None:
        from ofa_nni.training.config import PRESETS_BY_SPACE

        with_cpu_preset = [name for name, presets in PRESETS_BY_SPACE.items() if "cpu" in presets]
        if self.space not in with_cpu_preset:
            raise InvalidInputError(f"space must be one of {with_cpu_preset} (the spaces with a CPU-sized preset), "
                                    f"got {self.space!r}")
        if not 1 <= self.num_targets <= 20:
            raise InvalidInputError(f"num_targets must be between 1 and 20, got {self.num_targets}")
        if self.accuracy_subnets < 20:
            raise InvalidInputError(
                f"accuracy_subnets must be at least 20 (the predictor needs data), got {self.accuracy_subnets}"
            )
        if self.latency_validation_subnets < 5:
            raise InvalidInputError("latency_validation_subnets must be at least 5, got "
                                    f"{self.latency_validation_subnets}")
        if self.search_generations < 1 or self.population_size < 4:
            raise InvalidInputError("search_generations must be >= 1 and population_size >= 4")
        if self.scratch_epochs is not None and self.scratch_epochs < 1:
            raise InvalidInputError(f"scratch_epochs must be >= 1, got {self.scratch_epochs}")
        if self.train_epochs_factor is not None and not self.train_epochs_factor > 0:
            raise InvalidInputError(f"train_epochs_factor must be positive, got {self.train_epochs_factor}")


@dataclasses.dataclass(frozen=True)
class DemoResult:
    run_dir: Path
    report_path: Path
    plot_path: Path
    targets: list[dict[str, Any]]
    costs: dict[str, Any]
    predictor_metrics: dict[str, float]
    latency_validation: dict[str, Any]


def _say(message: str) -> None:
    print(message, flush=True)


def _phase_line(cost: PhaseCost) -> str:
    return (f"  {cost.name}: {cost.wall_s:.1f} s wall, {cost.cpu_s:.1f} s CPU, {cost.energy_kwh * 1e3:.3f} Wh"
            + (f" ({cost.note})" if cost.note else ""))


def train_subnet(
    subnet: torch.nn.Module, data: Any, *, epochs: int, batch_size: int, lr: float, seed: int,
    from_scratch: bool = True,
) -> float:
    """Train ``subnet`` alone, re-initialised (``from_scratch``: the 'one network per target'
    baseline) or from its inherited weights (OFA's fine-tune); returns its held-out accuracy. Same
    optimiser family and data as the supernet's training."""
    from torch.utils.data import DataLoader

    from ofa_nni.accuracy import evaluate_subnet
    from ofa_nni.layers import init_weights_

    torch.manual_seed(seed)
    if from_scratch:
        init_weights_(subnet)
    subnet.train()
    loader = DataLoader(data.train, batch_size=batch_size, shuffle=True, drop_last=True)
    steps = epochs * len(loader)
    optimizer = torch.optim.SGD(subnet.parameters(), lr=lr, momentum=0.9, nesterov=True, weight_decay=3e-5)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, steps))
    criterion = torch.nn.CrossEntropyLoss(label_smoothing=0.1)
    for _ in range(epochs):
        subnet.train()
        for images, labels in loader:
            optimizer.zero_grad(set_to_none=True)
            criterion(subnet(images), labels).backward()
            optimizer.step()
            schedule.step()
    with torch.no_grad():
        return evaluate_subnet(subnet, DataLoader(data.val, batch_size=256))["accuracy"]


def _latency_targets(table: Any, supernet: Any, count: int) -> list[float]:
    """Budgets spread over the table's range, from just above the smallest subnet to below the largest."""
    low = float(table(supernet.min_sample()))
    high = float(table(supernet.max_sample()))
    fractions = np.linspace(0.15, 0.75, count) if count > 1 else np.array([0.5])
    return [round(low + f * (high - low), 4) for f in fractions]


def run_demo(
    run_dir: str | Path,
    settings: DemoSettings | None = None,
    *,
    say: Callable[[str], None] = _say,
) -> DemoResult:
    """Run the whole flow into ``run_dir`` (see the module docstring) and return its results. The run
    directory is locked meanwhile: a second demo into it is refused at once, naming this process."""
    run_path = Path(run_dir).expanduser().resolve()
    with exclusive_lock(run_path, "demo run directory"):
        return _run_demo(run_path, settings or DemoSettings(), say)


def _check_same_data(run_path: Path, data_name: str, fingerprint: str) -> None:
    """A trained run directory is reused only for the data it was trained on: another ``--data`` (or
    another file under the same path) would reuse a supernet trained on other images, and a later
    step would fail naming a file the user never chose. ``data.json`` records the data of the run's
    training (written before it starts; a directory not trained yet takes the data of this run)."""
    record_path = run_path / "data.json"
    trained = (run_path / "train" / "supernet.pt").exists() or (run_path / "train" / "checkpoints").is_dir()
    if trained:
        earlier_name, earlier_fingerprint = _trained_data(run_path, record_path)
        if earlier_name != data_name:
            raise InvalidInputError(f"{run_path}: this run directory was trained on {earlier_name}, not {data_name}; "
                                    "pass that --data again, or another --run-dir")
        if earlier_fingerprint is not None and earlier_fingerprint != fingerprint:
            raise InvalidInputError(f"{run_path}: this run directory was trained on other images under {data_name} "
                                    f"(data fingerprint {earlier_fingerprint}, now {fingerprint}: the file was "
                                    "replaced or changed); use another --run-dir")
    if not trained or not record_path.is_file():
        atomic_write_json(record_path, {"data": data_name, "fingerprint": fingerprint})


def _trained_data(run_path: Path, record_path: Path) -> tuple[str, str | None]:
    """The data name and fingerprint a trained run directory was trained on: from ``data.json``, or
    for a directory of before it from its training configuration (no fingerprint then)."""
    if record_path.is_file():
        try:
            earlier = json.loads(record_path.read_text(encoding="utf-8"))
            return str(earlier["data"]), str(earlier["fingerprint"])
        except (ValueError, KeyError, TypeError):
            raise InvalidInputError(f"{record_path} is damaged (expected {{\"data\": ..., \"fingerprint\": ...}}); "
                                    "restore it or use another --run-dir") from None
    import yaml

    config_path = run_path / "train" / "config.yaml"
    data = (yaml.safe_load(config_path.read_text(encoding="utf-8")) or {}).get("data", {}) \
        if config_path.is_file() else {}
    return str(data.get("root") or data.get("kind", "digits")), None


def _run_demo(run_path: Path, settings: DemoSettings, say: Callable[[str], None]) -> DemoResult:
    from torch.utils.data import DataLoader

    from ofa_nni.accuracy import (
        AccuracyDataset,
        AccuracyPredictor,
        OutdatedPredictorError,
        build_accuracy_predictor,
        collect_accuracy_dataset,
    )
    from ofa_nni.app.runner import train
    from ofa_nni.data import calibration_loader, load_data
    from ofa_nni.evaluation import evaluate_frozen_subnet
    from ofa_nni.export import export_subnet
    from ofa_nni.latency import LatencyTable, build_latency_table, check_deployments, validate_latency_table
    from ofa_nni.latency.deployment import deployment_lines
    from ofa_nni.latency.table import validation_verdict_lines
    from ofa_nni.search import ParetoSearch, specialize
    from ofa_nni.training import demo_config
    from search_spaces import load_supernet

    _quiet_libraries()
    config = demo_config(run_dir=str(run_path / "train"), seed=settings.seed)
    config = config.replace(space=dataclasses.replace(config.space, name=settings.space, preset="cpu"))
    data_name = "digits"
    if settings.data is not None:
        data_path = Path(settings.data).expanduser().resolve()
        config = config.replace(data=dataclasses.replace(config.data, kind="npz", root=str(data_path)))
        data_name = str(data_path)
    # The data first: a bad --data file is refused before the run directory is created.
    data = load_data(config.data.kind, root=config.data.root,
                     resolution=max(config.space.space_kwargs()["resolutions"]))
    num_train = len(data.train)  # type: ignore[arg-type]
    if num_train < config.data.batch_size:
        # The demo has no batch size option: a small file trains in batches of all its images.
        say(f"  note: {num_train} training images, fewer than the demo's batch of {config.data.batch_size}: "
            f"training in batches of {num_train}")
        config = config.replace(data=dataclasses.replace(config.data, batch_size=num_train))
    run_path.mkdir(parents=True, exist_ok=True)
    meter = CostMeter(ledger=run_path / "phase_costs.json")
    started = time.perf_counter()

    # 1. Train once ------------------------------------------------------------------------
    if settings.train_epochs_factor is not None:
        strategy: Any = config.strategy
        config = config.replace(strategy=dataclasses.replace(strategy, epochs_factor=settings.train_epochs_factor))
    config = config.replace(trainer=dataclasses.replace(config.trainer, progress_bar=settings.show_progress))
    supernet_path = run_path / "train" / "supernet.pt"
    if supernet_path.exists():  # a run directory is reused only for the same space
        trained_space = getattr(load_supernet(supernet_path), "space_name", None)
        if trained_space != settings.space:
            raise InvalidInputError(f"{run_path}: this run directory holds a supernet of {trained_space}, not of "
                                    f"{settings.space}; pass --space {trained_space} or another --run-dir")
    _check_same_data(run_path, data_name, data.fingerprint)
    say(f"[1/5] train once: progressive shrinking on {data_name} ({settings.space}) -> {run_path / 'train'}")
    with meter.phase("train once (progressive shrinking)") as step:
        step.reused = supernet_path.exists()
        if not step.reused:
            resume = (run_path / "train" / "checkpoints" / "last.pt").exists()
            trained = train(config, resume=resume)
            supernet_path = trained.supernet_path
    say(_phase_line(meter.phases[-1]))
    supernet = load_supernet(supernet_path)
    arch = supernet.arch_space
    calibration = calibration_loader(data, batch_size=100)
    held_out = DataLoader(data.val, batch_size=256)

    # 2. Measure: accuracy predictor ----------------------------------------------------------
    say(f"[2/5] measure: accuracy of {settings.accuracy_subnets} BN-recalibrated subnets, then the predictor")
    with meter.phase("measure: accuracy data set + predictor") as step:
        dataset_path = run_path / "accuracy_dataset.jsonl"
        dataset = collect_accuracy_dataset(
            supernet, path=dataset_path, num_subnets=settings.accuracy_subnets, calibration_batches=calibration,
            eval_batches=held_out, seed=settings.seed, data_description=f"{data_name} held-out split",
            data_fingerprint=data.fingerprint,
            show_progress=settings.show_progress,
        )
        dataset = AccuracyDataset.load(dataset_path, arch_space=arch, complete=True)
        predictor_path = run_path / "accuracy_predictor.npz"
        predictor = None
        if predictor_path.exists():
            try:
                predictor = AccuracyPredictor.load(predictor_path, arch_space=arch)
            except OutdatedPredictorError:
                say("  the predictor file is of an earlier format (unbounded predictions): rebuilding it")
            if predictor is not None and (predictor.info.get("num_train", 0) + predictor.info.get("num_test", 0)
                                          != len(dataset)):
                predictor = None  # built from another data set (an earlier, shorter run): rebuild
        step.reused = predictor is not None
        if predictor is None:
            predictor = build_accuracy_predictor(dataset, kind="auto", seed=settings.seed)
            predictor.save(predictor_path)
    say(_phase_line(meter.phases[-1]))
    metrics = dict(predictor.metrics)
    say(f"  predictor {predictor.kind}: RMSE {metrics['rmse_percent']:.2f} points, Kendall {metrics['kendall']:.3f}, "
        f"Spearman {metrics['spearman']:.3f} (held-out subnets)")
    for line in predictor_verdict_lines(metrics):
        say(f"  {line}")

    # 2b. Measure: latency table --------------------------------------------------------------
    say("[3/5] measure: this machine's latency lookup table (torch eager, CPU, 1 thread, batch 1), validated")
    table_path = run_path / "latency_table.json"
    with meter.phase("measure: latency table") as step:
        step.reused = table_path.exists()
        if step.reused:
            table = LatencyTable.load(table_path, arch_space=arch)
        else:
            # One thread: batch-1 inference of a model this small runs faster on one core, and timings
            # of two threads on two cores swing with whatever else the machine runs (see ofa_nni.latency).
            table = build_latency_table(arch, backend="torch", device="cpu", batch_size=1, num_threads=1,
                                        seed=settings.seed,
                                        progress_path=run_path / "latency_table.progress.json",
                                        show_progress=settings.show_progress)
            validate_latency_table(table, supernet.freeze, num_subnets=settings.latency_validation_subnets,
                                   calibration_subnets=settings.latency_validation_subnets, seed=settings.seed,
                                   show_progress=settings.show_progress)
            table.save(table_path)
    say(_phase_line(meter.phases[-1]))
    validation = dict(table.validation or {})
    corrected = validation.get("corrected") if (table.correction or {}).get("applied") else None
    shown = corrected or validation.get("raw", {})
    say(f"  latency table: Spearman {shown.get('spearman', float('nan')):.3f}, "
        f"MAPE {shown.get('mape_percent', float('nan')):.1f}% on {settings.latency_validation_subnets} subnets"
        + (" (with the fitted correction)" if corrected else ""))
    if validation and not validation.get("meets_targets"):  # said as plainly as 'lut build' says it
        for line in validation_verdict_lines(validation):
            say("  " + line)

    # 3. Specialize ------------------------------------------------------------------------------
    budgets = _latency_targets(table, supernet, settings.num_targets)
    say(f"[4/5] specialize: {len(budgets)} latency targets in one search: {', '.join(f'{b:.3f} ms' for b in budgets)}")
    with meter.phase("specialize (search)"):
        result = specialize(arch, predictor, {"latency_ms": table}, [{"latency_ms": b} for b in budgets],
                            population_size=settings.population_size, generations=settings.search_generations,
                            seed=settings.seed)
        front = ParetoSearch(arch_space=arch, costs={"latency_ms": table}, population_size=settings.population_size,
                             generations=settings.search_generations, seed=settings.seed).run(predictor)
    say(_phase_line(meter.phases[-1]) + f" ({result.evaluations} predictor queries)")

    # 4. Deploy ----------------------------------------------------------------------------------
    say("[5/5] deploy: freeze, recalibrate BN, export (TorchScript + ONNX, checked), measure")
    chosen: list[dict[str, Any]] = []
    with meter.phase("deploy (freeze, export, measure)"):
        subnets = []
        for index, target in enumerate(result.targets):
            evaluation = evaluate_frozen_subnet(supernet, target.sample, calibration, held_out)
            subnet = evaluation.model
            exports = export_subnet(subnet, run_path / "exports", name=f"target{index + 1}")
            subnets.append((subnet, target.sample[arch.RESOLUTION_LABEL]))
            chosen.append({
                "budget_ms": target.budgets["latency_ms"],
                "arch": target.arch,
                "accuracy_predicted": float(target.score),
                "accuracy_measured": evaluation.accuracy,
                "latency_predicted_ms": float(target.costs["latency_ms"]),
                "macs": evaluation.macs,
                "params": evaluation.params,
                "exports": {e.format: {"path": str(e.path), "max_abs_diff": e.max_abs_diff} for e in exports},
            })
        # Measured with the table's own protocol, set against each target, load change checked.
        check = check_deployments(table, subnets, names=[f"target{i + 1}" for i in range(len(chosen))],
                                  targets_ms=[entry["budget_ms"] for entry in chosen],
                                  predicted_ms=[entry["latency_predicted_ms"] for entry in chosen], seed=settings.seed)
        for entry, row in zip(chosen, check["subnets"], strict=True):
            entry["latency_measured_ms"] = row["measured_ms"]
            entry["latency_over_target"], entry["latency_over_by_ms"] = row["over_target"], row["over_by_ms"]
    say(_phase_line(meter.phases[-1]))
    for line in deployment_lines(check):
        say("  " + line)

    # 5. Cost of the alternative: one network trained from scratch per target -------------------
    full_phase = _full_network_phase(config, arch)
    scratch_epochs = settings.scratch_epochs or full_phase.epochs
    middle = result.targets[len(result.targets) // 2]
    say(f"[cost] train one network from scratch ({scratch_epochs} epochs, the middle target's subnet) for comparison")
    with meter.phase("baseline: one network trained from scratch"):
        scratch_accuracy = train_subnet(
            supernet.freeze(middle.sample), data, epochs=scratch_epochs, batch_size=config.data.batch_size,
            lr=full_phase.lr, seed=settings.seed,
        )
    say(_phase_line(meter.phases[-1]) + f", held-out accuracy {100 * scratch_accuracy:.1f}%")

    costs = _cost_summary(meter, len(budgets), scratch_epochs)
    costs["scratch_accuracy"] = scratch_accuracy
    costs["scratch_arch"] = middle.arch
    latency_report: dict[str, Any] = {
        "backend": "torch/cpu, 1 thread", "num_subnets": settings.latency_validation_subnets,
        "spearman": shown.get("spearman", float("nan")), "mape_percent": shown.get("mape_percent", float("nan")),
        "corrected": bool(corrected), "details": validation,
    }
    report = DemoResults({
        "run_dir": str(run_path),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": _machine(),
        "seconds": time.perf_counter() - started,
        "targets": chosen,
        "predictor": {"kind": predictor.kind, "num_subnets": len(dataset), **metrics},
        "latency_validation": latency_report,
        "deployment_check": check,
        "pareto_front": {"archs": front.archs(), "accuracy_predicted": front.scores.tolist(),
                         "latency_ms": front.costs["latency_ms"].tolist()},
        "costs": costs,
    })
    plot_path = run_path / "pareto.png"
    demo_pareto_plot(plot_path, report, sampled=(table(dataset.indices), dataset.accuracies))
    report_path = run_path / "report.md"
    _write_text(report_path, demo_report_markdown(report))
    report.save(run_path / "results.json")
    _print_table(chosen, costs, say)
    say(f"\nreport: {report_path}\nplot:   {plot_path}\nfiles:  {run_path}")
    return DemoResult(run_dir=run_path, report_path=report_path, plot_path=plot_path, targets=chosen, costs=costs,
                      predictor_metrics=metrics, latency_validation=latency_report)


def _quiet_libraries() -> None:
    """The demo prints its own progress: drop Lightning's banners and known deprecation noise."""
    import logging
    import warnings

    for name in ("pytorch_lightning", "lightning.pytorch", "lightning_fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"torch\.jit.*")
    warnings.filterwarnings("ignore", message=r".*LeafSpec.*")
    warnings.filterwarnings("ignore", message=r".*litlogger.*")


def _full_network_phase(config: Any, arch: Any) -> Any:
    """The schedule's first phase (the full network), whose epochs and lr the baseline reuses."""
    return config.strategy.schedule(arch, batch_size=config.data.batch_size)[0]


def _cost_summary(meter: CostMeter, num_targets: int, scratch_epochs: int) -> dict[str, Any]:
    train_cost = meter.total("train once (progressive shrinking)")
    specialize_cost = meter.total("measure: accuracy data set + predictor", "measure: latency table",
                                  "specialize (search)", "deploy (freeze, export, measure)")
    scratch = meter.total("baseline: one network trained from scratch")
    per_target_specialize = meter.total("specialize (search)", "deploy (freeze, export, measure)")
    per_target_specialize = per_target_specialize.scaled(1 / num_targets, "per target")
    measure_once = meter.total("measure: accuracy data set + predictor", "measure: latency table")
    rows = []
    for n in sorted({1, num_targets, 10, 40}):
        ofa_kwh = train_cost.energy_kwh + measure_once.energy_kwh + n * per_target_specialize.energy_kwh
        separate_kwh = n * scratch.energy_kwh
        rows.append({"targets": n, "ofa_wh": 1e3 * ofa_kwh, "ofa_per_target_wh": 1e3 * ofa_kwh / n,
                     "separate_wh": 1e3 * separate_kwh, "ratio": separate_kwh / ofa_kwh if ofa_kwh else math.nan})
    note = (
        f"Measured: training once, measuring (accuracy data set, predictor, latency table) once, and specializing "
        f"{num_targets} targets in this run; the separate-training column is N x the measured cost of training one "
        f"network from scratch for {scratch_epochs} epochs (as many as the supernet's full-network phase), one "
        "specialized subnet per target; it leaves out the architecture search each separate network would also "
        "need. Rows for 10 and 40 targets extrapolate the per-target costs measured here."
    )
    # The smallest number of targets from which training once (plus measuring once and specializing
    # each) costs no more energy than training one network per target; None: never on these figures.
    fixed_kwh = train_cost.energy_kwh + measure_once.energy_kwh
    saving_per_target = scratch.energy_kwh - per_target_specialize.energy_kwh
    break_even = max(1, math.ceil(fixed_kwh / saving_per_target - 1e-9)) if saving_per_target > 0 else None
    return {
        "break_even_targets": break_even,
        "phases": [dataclasses.asdict(p) for p in meter.phases],
        "train_once": dataclasses.asdict(train_cost),
        "measure_and_specialize": dataclasses.asdict(specialize_cost),
        "scratch_one_network": dataclasses.asdict(scratch),
        "amortization": rows,
        "note": note,
        "method": meter.phases[0].method,
    }


def _print_table(chosen: Sequence[dict[str, Any]], costs: dict[str, Any], say: Callable[[str], None]) -> None:
    header = (f"\n{'target':>10}  {'arch':<60}  {'acc pred/meas':>14}  {'lat pred/meas ms':>17}  {'MACs':>7}  "
              f"{'params':>7}")
    say(header)
    say("-" * len(header))
    for t in chosen:
        accuracy = f"{100 * t['accuracy_predicted']:>5.1f}/{100 * t['accuracy_measured']:<5.1f}%"
        latency = f"{t['latency_predicted_ms']:>7.3f}/{t['latency_measured_ms']:<7.3f}"
        say(f"{t['budget_ms']:>8.3f}ms  {t['arch'][:60]:<60}  {accuracy:>14}  {latency:>17}  "
            f"{t['macs'] / 1e6:>6.2f}M  {t['params'] / 1e3:>6.1f}K")
    say("\ncost (energy): OFA train once + specialize N  vs  N networks trained separately")
    break_even = costs.get("break_even_targets")
    say("  OFA pays off from N = " + (f"{break_even} targets" if break_even else
                                    "never here (a subnet costs as much to specialize as to train)"))
    for row in costs["amortization"]:
        say(f"  N={row['targets']:>3}: {row['ofa_wh']:8.3f} Wh ({row['ofa_per_target_wh']:.3f} per target)  vs  "
            f"{row['separate_wh']:8.3f} Wh  -> {row['ratio']:.2f}x")


def _machine() -> str:
    import os
    import platform

    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}"


def _write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda file: file.write(text.encode("utf-8")))
