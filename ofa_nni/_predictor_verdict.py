"""How far a predictor's held-out figures can be trusted, said in words (re-exported by
:mod:`ofa_nni.accuracy`; a module of its own so that reports read it without importing torch)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

__all__ = ["FEW_HELD_OUT_SUBNETS", "predictor_verdict_lines"]

FEW_HELD_OUT_SUBNETS = 5
"""Below this many held-out subnets a predictor's figures say little (one gives no Kendall tau, two
give +1 or -1), and :func:`predictor_verdict_lines` says so."""


def predictor_verdict_lines(metrics: Mapping[str, Any]) -> list[str]:
    """What a user must know before searching with a predictor whose held-out ``metrics``
    (:func:`predictor_metrics`) are these: nothing when it ranks held-out subnets better than chance
    on enough of them, otherwise what is wrong and what to do (one home for the CLI, the demo and
    its report)."""
    kendall, count = float(metrics.get("kendall", float("nan"))), int(metrics.get("num_subnets", 0))
    lines = []
    if count < FEW_HELD_OUT_SUBNETS:
        lines.append(f"warning: only {count} held-out subnets judge this predictor, so its figures say little; "
                     "build it from more subnets (predictor build --num-subnets)")
    if math.isnan(kendall):
        lines.append("warning: the predictor ranks nothing (Kendall tau nan: every held-out subnet scored alike, "
                     "or it predicts one value), so a search has nothing to choose by")
    elif kendall <= 0.0:
        lines.append(f"warning: the predictor ranks held-out subnets no better than chance (Kendall tau "
                     f"{kendall:.3f}), and the search chooses by it: the supernet likely needs more training, or "
                     "the predictor more subnets; judge the chosen subnets by their measured accuracy")
    return lines
