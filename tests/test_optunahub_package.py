"""The OptunaHub-layout package loads offline with optunahub.load_local_module and runs a study."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import optuna
import optunahub
import yaml

from ofa_nni import AnalyticCostModel, ArchSpace
from strategies.optuna_sampler import OFAEvolutionSampler

REGISTRY = Path(__file__).resolve().parents[1] / "optunahub_registry"
PACKAGE = REGISTRY / "samplers" / "ofa_evolution"


def test_package_layout_and_front_matter():
    assert {"__init__.py", "README.md", "LICENSE", "example.py"} <= {p.name for p in PACKAGE.iterdir()}
    text = (PACKAGE / "README.md").read_text()
    match = re.match(r"^---\n(.*?)\n---\n", text, re.S)
    assert match, "README.md must start with YAML front matter"
    front = yaml.safe_load(match.group(1))
    assert {"author", "title", "description", "tags", "optuna_versions", "license"} <= set(front)
    assert front["license"] == "MIT License" and "MIT License" in (PACKAGE / "LICENSE").read_text()
    # Versions the package was tested with; a newer minor release of the installed major must not fail a
    # fresh clone's CI (add it to the list once this suite has passed with it).
    listed = [str(v) for v in front["optuna_versions"]]
    assert all(re.fullmatch(r"\d+\.\d+\.\d+", v) for v in listed), listed
    assert optuna.__version__.split(".")[0] in {v.split(".")[0] for v in listed}, (optuna.__version__, listed)
    for section in ("## Abstract", "## APIs", "## Installation", "## Example"):
        assert section in text


def test_load_local_module_offline_and_run_a_study():
    module = optunahub.load_local_module(package="samplers/ofa_evolution", registry_root=str(REGISTRY))
    assert module.OFAEvolutionSampler is OFAEvolutionSampler
    space = ArchSpace()
    macs = AnalyticCostModel(space).macs
    weights = np.random.default_rng(0).normal(scale=0.01, size=space.feature_dim)

    def objective(trial: optuna.Trial) -> float:
        sample = module.suggest_sample(trial, space)
        module.set_constraints(trial, {"macs": macs(sample) / 1e6 - 250})
        return float(space.to_features([sample])[0] @ weights)

    study = optuna.create_study(direction="maximize", sampler=module.OFAEvolutionSampler(arch_space=space, seed=0))
    study.optimize(objective, n_trials=30)
    assert len(study.trials) == 30
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    assert study.best_trial.constraints["macs"] <= 0
    assert len({t.user_attrs["arch"] for t in study.trials}) == 30
