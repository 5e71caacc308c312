"""The two web UIs in a real browser: optuna-dashboard on a study made with OFAEvolutionSampler, and
NNI's web UI on an nnictl experiment with OFAEvolutionTuner, both served on 127.0.0.1 and loaded in
headless Chromium (tests/browser.py). Each test asserts that every trial is listed with the arch
string of its subnet and keeps screenshots in tests/artifacts/ (or $OFA_NNI_TEST_ARTIFACTS).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from browser import chromium_executable, chromium_page, screenshot, wait_for_http, wait_for_texts
from nnictl_experiment import TINY, example_experiment, final_metric, free_port, train_tiny_supernet

from ofa_nni.costs import AnalyticCostModel
from strategies.optuna_sampler import OFAEvolutionSampler, publish_to_dashboard, set_constraints, suggest_sample

pytestmark = pytest.mark.browser


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=20)


def _trial_cards(text: str) -> dict[int, str]:
    """The text of each trial's detail card on optuna-dashboard's trials page, by trial number."""
    heads = list(re.finditer(r"Trial (\d+) \(trial_id=\d+\)", text))
    ends = [head.start() for head in heads[1:]] + [len(text)]
    return {int(head.group(1)): text[head.start():end] for head, end in zip(heads, ends, strict=True)}


def test_optuna_dashboard_shows_trials_archs_and_artifacts(tmp_path: Path) -> None:
    chromium_executable()  # skip before any work where there is no browser
    dashboard = Path(sys.executable).with_name("optuna-dashboard")
    if not dashboard.exists():
        dashboard = Path(shutil.which("optuna-dashboard") or "optuna-dashboard")
    costs = AnalyticCostModel(TINY)
    largest = costs.macs(TINY.max_sample())

    def objective(trial: optuna.Trial) -> float:
        sample = suggest_sample(trial, TINY)  # sets the user attribute "arch"
        set_constraints(trial, {"macs": costs.macs(sample) / largest - 0.8})
        return costs.macs(sample) / largest

    storage = f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(study_name="ofa-web-ui", storage=storage, direction="maximize",
                                sampler=OFAEvolutionSampler(arch_space=TINY, population_size=4, num_parents=2,
                                                            n_startup_trials=3, seed=0))
    study.optimize(objective, n_trials=6)
    published = publish_to_dashboard(study, TINY, tmp_path / "artifacts")
    archs = {trial.number: trial.user_attrs["arch"] for trial in study.trials}
    assert len(set(archs.values())) == 6
    assert any(trial.value > 0.8 for trial in study.trials)  # an infeasible trial for the timeline
    study_id = study._study_id

    port = free_port()
    log = (tmp_path / "dashboard.log").open("wb")
    server = subprocess.Popen([str(dashboard), storage, "--artifact-dir", str(tmp_path / "artifacts"),
                               "--host", "127.0.0.1", "--port", str(port)], stdout=log, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for_http(f"{base}/api/studies", timeout=120, process=server)
        with chromium_page() as page:
            # The trials page with every trial selected shows each one's detail card.
            numbers = ",".join(str(number) for number in archs)
            page.goto(f"{base}/dashboard/studies/{study_id}/trials?numbers={numbers}")
            text = wait_for_texts(page, [f"arch {arch}" for arch in archs.values()], name="optuna-dashboard-trials")
            screenshot(page, "optuna-dashboard-trials", full_page=False)  # the list and the first cards
            assert "6 Trials" in text
            cards = _trial_cards(text)
            assert sorted(cards) == sorted(archs)
            for number, arch in archs.items():
                assert f"arch {arch}" in cards[number] and "Complete" in cards[number]
            # publish_to_dashboard's summary is the chosen trial's note.
            assert f"Chosen subnet: trial {published['trial']}" in cards[published["trial"]]

            page.goto(f"{base}/dashboard/studies/{study_id}")
            # publish_to_dashboard's artifacts, and the infeasible trials (set_constraints' list-style
            # attribute is the one the dashboard reads) in the timeline.
            wait_for_texts(page, ["Study Artifacts", "pareto_front.png", f"subnet_trial{published['trial']}.md",
                                  "Infeasible"], name="optuna-dashboard-study")
            screenshot(page, "optuna-dashboard-study")
    finally:
        _stop(server)
        log.close()


@pytest.mark.slow
def test_nni_web_ui_shows_trials_and_the_archs_of_their_metrics(tmp_path: Path) -> None:
    chromium_executable()
    supernet = train_tiny_supernet(tmp_path / "supernet-run")
    with example_experiment(supernet, tmp_path / "nni", trials=2, population=2) as run, chromium_page() as page:
        jobs = run.jobs
        assert [job["status"] for job in jobs] == ["SUCCEEDED"] * 2
        metrics = {job["trialJobId"]: final_metric(job) for job in jobs}
        assert len({metric["arch"] for metric in metrics.values()}) == 2

        page.goto(f"http://127.0.0.1:{run.port}/detail")
        wait_for_texts(page, [*metrics, "SUCCEEDED", "Add/Remove columns"], name="nni-trials")
        # The table shows the default metric; the other keys of the metric dict are columns to add.
        page.get_by_role("button", name="Add/Remove columns").click()
        page.get_by_text("arch (metric)", exact=True).click()
        page.get_by_role("button", name="Save").click()
        wait_for_texts(page, [metric["arch"] for metric in metrics.values()], name="nni-trials")
        shot = screenshot(page, "nni-web-ui-trials")

        for job in jobs:  # one row per trial: its number, id, status, default metric and arch
            trial_id, metric = job["trialJobId"], metrics[job["trialJobId"]]
            row = page.get_by_role("row").filter(has_text=trial_id)
            assert row.count() == 1, f"{trial_id}: {row.count()} rows"
            cells = [cell.strip() for cell in row.get_by_role("gridcell").all_inner_texts()]
            default = f"{metric['default']:.6f}".rstrip("0").rstrip(".")  # the web UI's formatAccuracy
            for expected in (str(job["sequenceId"]), "SUCCEEDED", f"{default} (FINAL)", metric["arch"]):
                assert expected in cells, f"trial {trial_id}: no cell {expected!r} in {cells!r} ({shot})"
    print(f"NNI web UI: {len(jobs)} trials, experiment done in {run.seconds:.0f} s; screenshot {shot}")
