"""The examples run end to end: NasExperiment in Python (examples/nni_python) and the import of
released OFA weights (examples/released_weights, on a checkpoint made here with PyPI ``ofa``)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


def _load_example(relative: str):
    spec = importlib.util.spec_from_file_location(Path(relative).stem, REPO / relative)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
@pytest.mark.parametrize("space", ["ofa-mbv3", "ofa-proxyless"])
def test_nas_experiment_example_quick(tmp_path, space):
    """About two minutes on one CPU thread: 6 epochs of progressive shrinking, then ~90 evaluated subnets."""
    out = tmp_path / "nas"
    result = subprocess.run(
        [sys.executable, str(REPO / "examples" / "nni_python" / "nas_experiment.py"), "--quick", "--no-progress",
         "--space", space, "--out", str(out)],
        capture_output=True, text=True, timeout=1200, cwd=REPO, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    assert results["space"] == space
    assert [row["phase"] for row in results["training"]] == ["full", "kernel", "depth1", "depth2", "expand1",
                                                             "expand2"]
    assert results["evaluations"] >= 24
    budgets = [t["budget_macs"] for t in results["targets"]]
    assert len(budgets) == 3 and budgets == sorted(budgets)
    for target in results["targets"]:
        assert target["macs"] <= target["budget_macs"] and 0.0 <= target["accuracy"] <= 1.0
        assert target["arch"] in result.stdout
    # Larger budgets never lose: every evaluated subnet is offered to every target.
    accuracies = [t["accuracy"] for t in results["targets"]]
    assert accuracies == sorted(accuracies)
    assert (out / "checkpoints" / "last.pt").is_file() and (out / "nni-experiments").is_dir()


def _released_style_checkpoint(path: Path, num_classes: int, width_mult: float = 1.0) -> None:
    """An ``ofa`` OFAMobileNetV3 of the released layout (k357, e346, d234, width 1.0 or 1.2) with random
    weights, saved as the released files are: ``{"state_dict": ...}``."""
    from ofa.imagenet_classification.elastic_nn.networks import OFAMobileNetV3

    torch.manual_seed(0)
    net = OFAMobileNetV3(n_classes=num_classes, ks_list=[3, 5, 7], expand_ratio_list=[3, 4, 6], depth_list=[2, 3, 4],
                         width_mult=width_mult)
    torch.save({"state_dict": net.state_dict()}, path)


def _image_folder(root: Path, classes: int, per_split: dict[str, int]) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, count in per_split.items():
        for label in range(classes):
            folder = root / split / f"class{label}"
            folder.mkdir(parents=True)
            for index in range(count):
                pixels = rng.integers(0, 256, size=(40, 40, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"{index}.png")


def test_released_weights_example(tmp_path, capsys):
    """The paper's space at full width (a checkpoint of the released layout, 4 classes so that a tiny
    image folder fits), a predictor built from 10 subnets, two MACs targets, both formats exported."""
    from ofa_nni.accuracy import AccuracyPredictor
    from search_spaces import load_supernet

    checkpoint = tmp_path / "ofa_mbv3_d234_e346_k357_w1.0"
    _released_style_checkpoint(checkpoint, num_classes=4)
    _image_folder(tmp_path / "images", classes=4, per_split={"train": 2, "val": 1})
    example = _load_example("examples/released_weights/import_ofa_weights.py")
    out = tmp_path / "run"
    result = example.main(["--checkpoint", str(checkpoint), "--num-classes", "4", "--data-root",
                           str(tmp_path / "images"), "--num-subnets", "10", "--calibration-images", "8",
                           "--batch-size", "8", "--target", "macs<=150M", "--target", "macs<=300M,params<=5M",
                           "--out", str(out)])
    printed = capsys.readouterr().out
    supernet = load_supernet(out / "supernet.pt")
    assert f"imported {checkpoint}: {sum(p.numel() for p in supernet.parameters()):,} parameters" in printed
    assert supernet.arch_space.kernel_sizes == (3, 5, 7) and supernet.arch_space.num_classes == 4
    reference = torch.load(checkpoint, weights_only=True)["state_dict"]
    assert torch.equal(supernet.state_dict()["classifier.weight"], reference["classifier.linear.weight"])
    assert AccuracyPredictor.load(out / "predictor.npz", arch_space=supernet.arch_space).kind == "mlp"
    budgets = [{"macs": 150e6}, {"macs": 300e6, "params": 5e6}]
    for target, budget in zip(result["targets"], budgets, strict=True):
        sample = supernet.arch_space.parse(target["arch"])
        assert target["macs"] == supernet.macs(sample) <= budget["macs"]
        assert target["params"] <= budget.get("params", np.inf)
        assert 0.0 <= target["accuracy"] <= 1.0
        assert set(target["files"]) == {"torchscript", "onnx"}
        for exported in target["files"].values():
            assert Path(exported["path"]).is_file() and exported["max_abs_diff"] <= 1e-4
        assert target["arch"] in printed
    assert json.loads((out / "specialized.json").read_text())["targets"] == json.loads(json.dumps(result["targets"]))


def test_released_weights_example_needs_data_or_a_predictor(tmp_path):
    example = _load_example("examples/released_weights/import_ofa_weights.py")
    with pytest.raises(SystemExit, match="give --data-root"):
        example.main(["--checkpoint", str(tmp_path / "missing"), "--target", "macs<=200M"])


RELEASED_PREDICTOR = Path(__file__).resolve().parents[2] / "shared" / "ofa-released" / "ofa" / "acc_predictor.pth"


@pytest.mark.skipif(not RELEASED_PREDICTOR.is_file(), reason=f"{RELEASED_PREDICTOR} is not here (not shipped)")
def test_released_weights_example_takes_the_released_predictor(tmp_path, capsys):
    """``--predictor acc_predictor.pth`` (mit-han-lab's, which ``ofa-nni search`` reads) ended in a
    traceback: the example read only ofa-nni's .npz predictors. It now searches the predictor's
    resolutions (160-224) of the w1.2 supernet, and refuses a w1.0 supernet in one line naming the width."""
    checkpoint = tmp_path / "ofa_mbv3_d234_e346_k357_w1.2"
    _released_style_checkpoint(checkpoint, num_classes=1000, width_mult=1.2)
    example = _load_example("examples/released_weights/import_ofa_weights.py")
    result = example.main(["--checkpoint", str(checkpoint), "--width-mult", "1.2", "--predictor",
                           str(RELEASED_PREDICTOR), "--target", "macs<=300M", "--out", str(tmp_path / "run")])
    (target,) = result["targets"]
    assert target["macs"] <= 300e6 and 0.5 < target["predicted_accuracy"] < 1.0
    assert int(target["arch"].split("_")[0][1:]) in (160, 176, 192, 208, 224)
    narrower = tmp_path / "ofa_mbv3_d234_e346_k357_w1.0"
    _released_style_checkpoint(narrower, num_classes=1000)
    with pytest.raises(SystemExit, match=r"error: predictor .* another search space \(.*width_mult: file has 1\.2"):
        example.main(["--checkpoint", str(narrower), "--predictor", str(RELEASED_PREDICTOR), "--target", "macs<=300M",
                      "--out", str(tmp_path / "run10")])
