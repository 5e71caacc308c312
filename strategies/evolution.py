"""``OFAEvolution``: OFA's specialisation search as an NNI multi-trial strategy.

The second step of the one-shot workflow in NNI's ``RandomOneShot`` docstring, for an OFA supernet:
once the space is trained (e.g. with :class:`strategies.ProgressiveShrinking`), a second
``NasExperiment`` on the same space object with this strategy picks subnets. NNI infers the
sequential engine and the ``raw`` model format for a supernet, so every submitted model is a
subnet frozen *with the supernet's weights* (Cai et al., ICLR 2020, Sec. 3.3: no retraining).

Two ways to score a candidate:

* ``predictor=`` a callable on ``(n, L)`` index arrays (e.g. an accuracy predictor): the whole
  evolution runs in-process on the batched engine (:class:`ofa_nni.search.EvolutionSearch`, seconds
  for 50K candidates); then the best subnet of every target is submitted to NNI and evaluated by the
  experiment's evaluator, so ``export_top_models`` ranks the chosen subnets by their measured metric.
* no predictor: every candidate the engine asks for is submitted as an NNI model and its final
  metric is what the evolution maximises (real evaluation with inherited weights).

With ``calibration_data``, each submitted subnet's batch-norm statistics are recomputed on it before
the evaluator sees the model (OFA's BN recalibration, :func:`ofa_nni.runtime.recalibrate_batchnorm`).
The strategy holds no search logic of its own; its ``state_dict`` is the engine's plus the submitted
subnets whose metric has arrived but that the engine was not told yet, so an interrupted experiment
resumes where it stopped. With ``ofa_nni`` imported, NNI checkpoints after every finished model
(:mod:`ofa_nni._nni_compat`, workaround 6), so even after ``kill -9`` only the subnet that was being
evaluated runs again.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from nni.nas.execution import ExecutionEngine
from nni.nas.space import ExecutableModelSpace, RawFormatModelSpace
from nni.nas.strategy.base import Strategy
from torch import nn

from ofa_nni.arch import ChoiceSpace
from ofa_nni.errors import InvalidInputError
from ofa_nni.runtime import recalibrate_batchnorm
from ofa_nni.search import ArrayFn, EvolutionSearch, EvolutionSettings, SearchResult

__all__ = ["OFAEvolution", "CalibratedModelSpace"]

_logger = logging.getLogger(__name__)


class CalibratedModelSpace(RawFormatModelSpace):
    """NNI's raw model format, with batch-norm recalibration of every subnet it instantiates.

    ``freeze(sample)`` returns a model of this class; its ``executable_model()`` is the space's frozen
    subnet (inherited weights) with BN statistics recomputed on ``calibration_data``.
    """

    def __init__(
        self,
        model_space: Any,
        evaluator: Any,
        calibration_data: Iterable[Any] | None = None,
        calibration_batches: int | None = None,
    ) -> None:
        super().__init__(model_space, evaluator)
        self.calibration_data = calibration_data
        self.calibration_batches = calibration_batches

    def freeze(self, sample: Mapping[str, Any]) -> CalibratedModelSpace:
        model = super().freeze(dict(sample))
        assert isinstance(model, CalibratedModelSpace)
        model.calibration_data = self.calibration_data
        model.calibration_batches = self.calibration_batches
        return model

    def executable_model(self) -> Any:
        model = super().executable_model()
        if self.calibration_data is not None and isinstance(model, nn.Module):
            recalibrate_batchnorm(model, self.calibration_data, self.calibration_batches)
        return model


def _user_space_class(model_space: Any) -> type:
    """The class of the space the user passed to ``NasExperiment``, whichever of NNI's model formats
    wraps it (``raw`` keeps the space as ``model_space``; ``simplified`` keeps a trace copy as ``model``)."""
    space = getattr(model_space, "model_space", None)
    if space is None:
        space = getattr(model_space, "model", None)
    if space is None:
        return type(model_space)
    symbol = getattr(space, "trace_symbol", None)  # a trace copy records the class it copies
    return symbol if isinstance(symbol, type) else type(space)


def _score(metric: Any) -> float:
    """An NNI metric (a number or a dict with ``default``) as a float; NaN when missing."""
    if isinstance(metric, Mapping):
        metric = metric.get("default")
    if metric is None or isinstance(metric, bool) or not isinstance(metric, (int, float, np.number)):
        return math.nan
    return float(metric)


class OFAEvolution(Strategy):
    """OFA's evolutionary search for an NNI ``NasExperiment`` on an OFA supernet (keyword-only).

    Args:
        predictor: Callable on an ``(n, L)`` int index array returning ``(n,)`` scores to maximise
            (e.g. an accuracy predictor). ``None``: every candidate is evaluated by the experiment's
            evaluator (its final metric, or the metric dict's ``default``) with inherited weights.
        costs: ``{name: callable on index arrays}``; default: the space's analytic ``macs`` and
            ``params``. Latency tables go here too.
        targets: One budget dict ``{cost name: maximum}`` or a list (one per deployment target). With
            a predictor, all targets are searched in one batched run and each target's best subnet
            is submitted; with real evaluation, the targets share every evaluated subnet.
        calibration_data: Batches (e.g. a DataLoader over ~2,000 training images) to recalibrate the
            batch norms of every submitted subnet on. ``None``: the supernet's statistics are kept.
        calibration_batches: Use at most this many batches for each recalibration.
        settings: The search's :class:`ofa_nni.search.EvolutionSettings` (default: OFA's).
        **overrides: Its fields by keyword (``population_size``, ``generations``, ``parent_ratio``,
            ``mutation_ratio``, ``mutation_prob``, ``resolution_mutation_prob``,
            ``max_evaluations``, ``seed``). With real evaluation the search runs at most
            ``len(targets) * population_size * (generations + 1)`` trials (one target when ``targets``
            is a dict or empty): the initial population and each generation's children, per target,
            fewer where targets propose the same subnet or share populations (more than 8 targets
            evolve in rotation). ``max_evaluations`` caps the total across targets; so does the
            experiment's ``max_trial_number`` (the search then stops early, resumable).

    After ``run``, :attr:`result` holds the search result (each target's subnet, arch string,
    score and costs).
    """

    def __init__(
        self,
        *,
        predictor: ArrayFn | None = None,
        costs: Mapping[str, ArrayFn] | None = None,
        targets: Mapping[str, float] | Sequence[Mapping[str, float]] | None = None,
        calibration_data: Iterable[Any] | None = None,
        calibration_batches: int | None = None,
        settings: EvolutionSettings | None = None,
        **overrides: Any,
    ) -> None:
        super().__init__()
        if predictor is not None and not callable(predictor):
            raise InvalidInputError(f"predictor must be a callable on index arrays or None, got {predictor!r}")
        if calibration_batches is not None and calibration_batches < 1:
            raise InvalidInputError(
                f"calibration_batches must be a positive integer or None, got {calibration_batches}")
        self.predictor = predictor
        self.costs = None if costs is None else dict(costs)
        self.targets: Any = {} if targets is None else targets
        self.calibration_data = calibration_data
        self.calibration_batches = calibration_batches
        self.settings = EvolutionSettings.build(settings, **overrides)
        self.search: EvolutionSearch | None = None
        self.result: SearchResult | None = None
        self._calibrated_space: CalibratedModelSpace | None = None
        self._submitted_finals: list[str] = []
        # Models submitted whose results the search has not absorbed yet: a checkpoint taken when one
        # of them finishes must keep its metric.
        self._in_flight: list[tuple[np.ndarray, CalibratedModelSpace]] = []

    def extra_repr(self) -> str:
        mode = "predictor" if self.predictor is not None else "evaluator"
        return f"scoring={mode}, targets={self.targets!r}, " + ", ".join(
            f"{key}={value}" for key, value in self.settings.as_dict().items()
        )

    # ------------------------------------------------------------------ NNI hooks
    def _initialize(self, model_space: ExecutableModelSpace, engine: ExecutionEngine) -> ExecutableModelSpace:
        from search_spaces import space_class, space_names

        supernet = getattr(model_space, "model_space", None)
        arch_space = getattr(supernet, "arch_space", None)
        user_class = _user_space_class(model_space)
        ofa_classes = tuple(space_class(name) for name in space_names())
        if not isinstance(arch_space, ChoiceSpace) and not issubclass(user_class, ofa_classes):
            raise InvalidInputError(
                f"OFAEvolution searches only the OFA spaces ({', '.join(c.__name__ for c in ofa_classes)} of "
                f"search_spaces, a trained supernet), got {user_class.__name__}; for other NNI spaces use NNI's "
                "strategies (e.g. nni.nas.strategy.RegularizedEvolution)"
            )
        if not isinstance(model_space, RawFormatModelSpace) or not isinstance(arch_space, ChoiceSpace):
            raise InvalidInputError(
                f"OFAEvolution needs the {user_class.__name__} in NNI's 'raw' model format with the 'sequential' "
                "engine, so that subnets inherit the supernet's weights (NNI infers both for a supernet when no "
                f"config is given); got NNI's {type(model_space).__name__}"
            )
        from nni.nas.evaluator.pytorch import Lightning

        if isinstance(model_space.evaluator, Lightning):
            # A Lightning evaluator trains every candidate (what an NNI multi-trial search of a
            # space without shared weights does), and NNI 3.0 fails at the second one (KeyError
            # 'train_acc' when its trainer is reused) after minutes of training.
            raise InvalidInputError(
                f"OFAEvolution scores subnets of a trained supernet as they are, so it takes an evaluator that "
                f"evaluates without training, e.g. strategies.RecalibratedEvaluator (BN recalibration, then held-out "
                f"accuracy) or an nni FunctionalEvaluator; got NNI's {type(model_space.evaluator).__name__}, which "
                "trains every subnet"
            )
        costs = self.costs
        if costs is None:
            cost_model = supernet.cost_model  # type: ignore[union-attr]
            costs = {"macs": cost_model.macs, "params": cost_model.params}
        self.search = EvolutionSearch(arch_space=arch_space,  # type: ignore[arg-type]  # any ChoiceSpace serves
                                      costs=costs, targets=self.targets, settings=self.settings)
        self._calibrated_space = CalibratedModelSpace(
            supernet, model_space.evaluator, self.calibration_data, self.calibration_batches
        )
        return model_space

    def _freeze(self, row: np.ndarray) -> CalibratedModelSpace:
        """The subnet of ``row`` as an NNI model; its sample is canonical (inactive blocks at their
        smallest choice), so the same subnet always has the same sample and arch string."""
        assert self.search is not None and self._calibrated_space is not None
        space = self.search.arch_space
        canonical = space.canonical_indices(space.check_indices(row[None]))[0]
        return self._calibrated_space.freeze(space.from_indices(canonical))

    def _run(self) -> None:
        assert self.search is not None
        search = self.search
        if self.predictor is not None:
            self.result = search.run(self.predictor)
            self._submit_finals(self.result)
            return
        while not search.done:
            rows = search.ask()
            if len(rows) == 0:
                break
            models = []
            for row in rows:  # NNI runs one model per trial
                if not self.wait_for_resource():
                    break
                model = self._freeze(row)
                self._in_flight.append((row, model))
                self.engine.submit_models(model)
                models.append(model)
            self.engine.wait_models(*models)
            if models:
                search.tell(rows[: len(models)], [_score(model.metric) for model in models])
            self._in_flight.clear()
            if len(models) < len(rows):
                _logger.info("OFAEvolution: the experiment's trial budget is spent; stopping (state is resumable)")
                break
        if search.evaluations:
            self.result = search.result()
            for target in self.result:
                _logger.info(
                    "OFAEvolution: %s -> %s (score %.6g, %s)", target.budgets, target.arch, target.score, target.costs
                )

    def _submit_finals(self, result: SearchResult) -> None:
        """Submit each target's subnet once (targets may share one) for evaluation by the evaluator."""
        for target in result:
            _logger.info(
                "OFAEvolution: %s -> %s (predicted %.6g, %s)", target.budgets, target.arch, target.score, target.costs
            )
            if target.arch in self._submitted_finals:
                continue
            if not self.wait_for_resource():
                _logger.info("OFAEvolution: the experiment's trial budget is spent before all targets were evaluated")
                return
            model = self._freeze(target.indices)
            self._in_flight.append((target.indices, model))
            self.engine.submit_models(model)
            self._submitted_finals.append(target.arch)
        self.engine.wait_models()
        self._in_flight.clear()

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        """The search's state, the final subnets already submitted, and the submitted subnets whose
        metric has arrived but that the search was not told yet (plain lists and numbers)."""
        finished = [(row, model) for row, model in self._in_flight if model.metric is not None]
        finals = list(self._submitted_finals)
        scored: list[list[Any]] = []
        if self.predictor is not None:
            assert self.search is not None
            finals += [arch for arch in (self.search.arch_space.format(model.sample) for _, model in finished)
                       if arch not in finals]
        else:
            scored = [[[int(i) for i in row], _score(model.metric)] for row, model in finished]
        return {
            "search": None if self.search is None else self.search.state_dict(),
            "submitted_finals": finals,
            "scored": scored,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Resume: call after ``initialize`` (NNI's ``NasExperiment.resume`` does), before ``run``."""
        if self.search is None:
            raise RuntimeError("OFAEvolution.load_state_dict must be called after initialize()")
        if state_dict.get("search") is not None:
            self.search.load_state_dict(state_dict["search"])
        self._submitted_finals = list(state_dict.get("submitted_finals", []))
        scored = state_dict.get("scored") or []
        if scored:
            self.search.tell(np.array([row for row, _ in scored], dtype=np.int64), [score for _, score in scored])
