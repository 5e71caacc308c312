"""``OFAEvolutionTuner``: OFA's evolutionary search as an NNI tuner for ``nnictl create --config``.

nnictl runs HPO tuners only (NAS experiments start from Python), so this is a plain
:class:`nni.tuner.Tuner` over NNI's ``choice`` search space of the OFA labels (generated with
``ofa-nni nni search-space``, never written by hand). Every trial evaluates one subnet of the
trained supernet for real (``python -m strategies.nni_trial``: freeze, recalibrate BN, held-out
accuracy, measured latency) and the tuner drives :class:`ofa_nni.search.EvolutionSearch`
(Cai et al., ICLR 2020, Sec. 3.3: OFA's regularised evolution, here with real accuracies instead of
a predictor) through its ask/tell protocol. It holds no search logic of its own.

Why the tuner reads the arch from the metric: with ``trialConcurrency > 1`` NNI 3.0's local training
service can start a trial with another trial's parameters, and the metric then arrives under a
``parameter_id`` whose parameters the trial never ran. Every trial therefore reports its own arch
string in its metric dict (``{'default': accuracy, ..., 'arch': 'r32_k3e2-...'}``) and the tuner
credits the score to *that* arch (falling back to the subnet it handed out under that id only for a
metric without one, with a warning when they disagree). Results are keyed by arch, never by
``parameter_id`` alone. NNI's own record of the parameters is not reliable either: when the tuner
serves only part of a request, ``MsgDispatcher.handle_request_trial_jobs`` overwrites the record of
the request's *first* id with ``''`` (seen here: ``receive_trial_result`` then gets ``''``).

NNI protocol, as ``nni/runtime/msg_dispatcher.py`` drives it:

* ``update_search_space`` (once at start, again on ``nnictl update searchspace``): builds the space
  and the engine (the first time) and checks the JSON against the space. Any setting it refuses
  (``InvalidInputError`` naming it) or a search space that differs (naming the first mismatching
  label) ends the experiment in ERROR with that one line (``ofa_nni._nni_compat``, workaround 10;
  with ``ofa-nni nni create`` the line is the status's error in ``nnictl experiment status`` and the
  web UI, with plain ``nnictl`` it is in ``dispatcher.log``).
* ``generate_multiple_parameters``: one ``{label: value}`` per requested id from the engine's ask
  queue. While the current generation's last subnets are still running there is nothing to
  propose; those ids are kept and served through NNI's ``st_callback`` as soon as the generation
  completes (the pattern of NNI's own evolution tuner). When the search is done, no more trials.
* ``receive_trial_result``: the arch's score is the metric's ``default`` (a number, or a dict with
  ``default``); NaN, a missing or non-numeric value mark a failed evaluation (archived, never
  selected). An arch over the tuner's budgets is archived but never selected.
* ``trial_end``: a trial that ended without a result (failed, killed, crashed before reporting)
  leaves a subnet unscored. Once no trial of the generation is running (or waiting to start), the
  subnets still unscored are marked failed (NaN), so the generation completes instead of waiting
  forever. Not earlier: under a mix-up, the failed trial's subnet may be the one another trial runs.
* ``import_data`` (``nnictl resume``, ``nnictl experiment import``): earlier results are told to the
  engine (the archive and parents continue from them; no subnet is evaluated twice).
* ``load_checkpoint`` (called by NNI's dispatcher when resuming, before any command): imports
  ``ofa_nni``, whose NNI 3.0 workaround 9 makes the resumed dispatcher process the resume data
  before any metric or trial request.
* ``resumed_trials`` (workaround 9, after ``import_data``): the trials that were running when NNI's
  manager stopped, which NNI runs again under their parameter ids. Their subnets count as handed
  out and running: never proposed again, scored by their metric, counted as failed if they end
  without one. New proposals skip every subnet that is running.

In a sequential run (``trialConcurrency: 1``) the proposals are deterministic for a seed.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import nni
import numpy as np
from nni.tuner import Tuner

from ofa_nni._deprecation import RenamedAttribute
from ofa_nni._nni_compat import in_nni_dispatcher, report_dispatcher_errors
from ofa_nni.errors import InvalidInputError, MissingInputError
from ofa_nni.search.settings import EvolutionSettings

if TYPE_CHECKING:
    from ofa_nni.arch import ArchSpace, Sample
    from ofa_nni.search import EvolutionSearch

__all__ = ["OFAEvolutionTuner", "BUILTIN_NAME", "TUNER_SETTINGS", "metric_score", "canonical_arch"]

BUILTIN_NAME = "OFAEvolutionTuner"
"""The name the tuner is registered under (``tuner: name: OFAEvolutionTuner`` in config.yml)."""

_logger = logging.getLogger(__name__)

# NNI's dispatcher process imports this module to build the tuner: from then on an exception in the
# tuner (a setting or search space it refuses) ends the experiment in ERROR with its message instead
# of leaving it RUNNING without trials (ofa_nni._nni_compat, workaround 10).
report_dispatcher_errors()

TUNER_SETTINGS = EvolutionSettings(population_size=16, generations=100)
"""The tuner's default settings: OFA's, with population 16 and 100 generations (every candidate is a
real NNI trial; see :class:`ofa_nni.search.EvolutionSettings`)."""


def metric_score(value: Any) -> float:
    """The score of an NNI final metric: a number, or a dict's ``default``; NaN when there is none.

    ``nni.report_final_result`` accepts a number or a dict with a ``default`` key (what NNI sorts
    and plots). Anything else -- no ``default``, ``None``, a string, infinity -- is treated as a
    failed evaluation (NaN), never as a score.
    """
    if isinstance(value, Mapping):
        value = value.get("default")
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        return math.nan
    value = float(value)
    return value if math.isfinite(value) else math.nan


class OFAEvolutionTuner(Tuner):
    """OFA's evolution over the subnets of a trained supernet, one NNI trial per subnet.

    Constructed by NNI from the ``classArgs`` of ``config.yml`` (keyword-only). The space comes
    from exactly one of ``space`` (a description, no file needed) or ``supernet`` (an *absolute*
    path: NNI starts the tuner in the experiment's log directory, so a relative path would not
    mean what it means in ``trialCommand``).

    Args:
        space: ``{"preset": "cpu", "num_classes": 10, ...}``, see
            :func:`ofa_nni.nni_search_space.arch_space_from_spec`. Must describe the supernet the
            trials load (``update_search_space`` checks it against the generated JSON).
        supernet: Absolute path of the trained supernet (``supernet.pt`` or a training checkpoint);
            only its space is read.
        constraints: Budgets ``{cost: maximum}`` met by every proposed subnet (repaired by the
            engine, never redrawn): ``macs``, ``params`` (analytic) and, with ``latency_table``,
            ``latency_ms``. Example: ``{macs: 1.0e6}``.
        latency_table: Absolute path of a latency lookup table of the space (``ofa-nni lut build``),
            making ``latency_ms`` available as a constraint.
        optimize_mode: ``"maximize"`` (accuracy, the default) or ``"minimize"`` the ``default`` metric.
        **settings: The fields of :class:`ofa_nni.search.EvolutionSettings`, one ``classArgs`` key
            each: ``population_size``, ``generations``, ``parent_ratio``, ``mutation_ratio``,
            ``mutation_prob``, ``resolution_mutation_prob``, ``max_evaluations``, ``seed`` (proposals
            are deterministic for a seed in a sequential run). Defaults: :data:`TUNER_SETTINGS`
            (OFA's, with a smaller population and generation count since every candidate is a real
            trial). The experiment's ``maxTrialNumber`` usually ends the search earlier.
    """

    def __init__(
        self,
        *,
        space: Mapping[str, Any] | None = None,
        supernet: str | None = None,
        constraints: Mapping[str, float] | None = None,
        latency_table: str | None = None,
        optimize_mode: str = "maximize",
        **settings: Any,
    ) -> None:
        super().__init__()
        self._configuration_error: InvalidInputError | None = None
        try:
            self._configure(space, supernet, constraints, latency_table, optimize_mode, settings)
        except InvalidInputError as error:
            if not in_nni_dispatcher():
                raise
            # Raised here, the error would reach only dispatcher.log while the experiment showed
            # RUNNING and then "Tuner did not connect" (ofa_nni._nni_compat, workaround 10): it is
            # raised at the first command instead, which ends the experiment in ERROR with its line.
            self._configuration_error = error
        self._search: EvolutionSearch | None = None
        self._queue: deque[np.ndarray] = deque()  # asked, not yet handed to a trial
        self._unscored: dict[str, tuple[np.ndarray, int]] = {}  # arch -> (row, parameter id), dispatch order
        self._handed_out: dict[int, Sample] = {}  # parameter id -> the subnet given to it
        self._running: set[int] = set()  # parameter ids handed out whose trial has not ended
        self._owed: deque[int] = deque()  # ids NNI asked for while nothing could be proposed
        self._resumed: dict[int, str] = {}  # parameter id -> arch of a trial NNI runs again after a resume
        self._send_trial: Callable[[int, Any], None] | None = None
        self.scores: dict[str, float] = {}
        """Every arch scored so far (arch string -> score as reported, NaN for a failed trial)."""

    def _configure(self, space: Mapping[str, Any] | None, supernet: str | None,
                   constraints: Mapping[str, float] | None, latency_table: str | None, optimize_mode: str,
                   settings: Mapping[str, Any]) -> None:
        # Only cheap checks here: NNI's dispatcher connects to the manager after constructing the
        # tuner and must do so within 10 s, so ofa_nni (torch, NNI NAS) loads in _build(), at the
        # first update_search_space -- where an error stops the experiment with its message -- or,
        # when NNI resumes the experiment, in load_checkpoint (after the dispatcher connected).
        if (space is None) == (supernet is None):
            raise InvalidInputError(
                "OFAEvolutionTuner needs exactly one of classArgs.space (e.g. {preset: cpu, num_classes: 10}) "
                "or classArgs.supernet (absolute path of the trained supernet)"
            )
        if optimize_mode not in ("maximize", "minimize"):
            raise InvalidInputError(f"optimize_mode must be 'maximize' or 'minimize', got {optimize_mode!r}")
        self.optimize_mode = optimize_mode
        self._space_spec = space
        self._supernet = None if supernet is None else _absolute_path("supernet", supernet)
        self._latency_table = None if latency_table is None else _absolute_path("latency_table", latency_table)
        self._constraints = dict(constraints or {})
        self.settings = EvolutionSettings.build(TUNER_SETTINGS, **settings)

    @property
    def arch_space(self) -> ArchSpace:
        """The search space (the supernet's)."""
        return self.search.arch_space

    space = RenamedAttribute("arch_space")  # the old name, for one release

    @property
    def search(self) -> EvolutionSearch:
        """The engine: :class:`ofa_nni.search.EvolutionSearch`, built on first use."""
        if self._configuration_error is not None:
            raise self._configuration_error
        if self._search is None:
            self._search = self._build()
        return self._search

    def _build(self) -> EvolutionSearch:
        from ofa_nni.costs import cost_model_for
        from ofa_nni.search import EvolutionSearch

        space = self._resolve_space()
        cost_model = cost_model_for(space)
        costs: dict[str, Callable[[np.ndarray], Any]] = {"macs": cost_model.macs, "params": cost_model.params}
        if self._latency_table is not None:
            from ofa_nni.latency import LatencyTable

            costs["latency_ms"] = LatencyTable.load(self._latency_table, arch_space=space)
        unknown = [name for name in self._constraints if name not in costs]
        if unknown:
            hint = "" if self._latency_table is not None else " ('latency_ms' needs latency_table)"
            raise InvalidInputError(f"constraints: unknown cost {unknown[0]!r}; allowed: {list(costs)}{hint}")
        return EvolutionSearch(arch_space=space, costs=costs, targets=self._constraints, settings=self.settings)

    def _resolve_space(self) -> ArchSpace:
        if self._supernet is None:
            from ofa_nni.nni_search_space import arch_space_from_spec

            assert self._space_spec is not None
            return arch_space_from_spec(self._space_spec)
        from search_spaces import load_supernet

        space: ArchSpace = load_supernet(self._supernet).arch_space
        return space

    # ------------------------------------------------------------------ NNI protocol
    def update_search_space(self, search_space: Any) -> None:
        from ofa_nni.nni_search_space import check_nni_search_space

        check_nni_search_space(self.arch_space, search_space)
        _logger.info("OFAEvolutionTuner: search space matches the space (%d labels)", len(self.arch_space.labels))

    def generate_multiple_parameters(self, parameter_id_list: list[int], **kwargs: Any) -> list[Sample]:
        if "st_callback" in kwargs:
            self._send_trial = kwargs["st_callback"]
        result = []
        for position, parameter_id in enumerate(parameter_id_list):
            try:
                result.append(self.generate_parameters(parameter_id))
            except nni.NoMoreTrialError:
                if not self.search.done and self._send_trial is not None:
                    self._owed.extend(parameter_id_list[position:])
                    _logger.info("OFAEvolutionTuner: generation %d still running; %d trial(s) wait for it",
                                 self.search.generation + 1, len(self._owed))
                break
        return result

    def generate_parameters(self, parameter_id: int, **kwargs: Any) -> Sample:
        row = self._next_row()
        if row is None:
            raise nni.NoMoreTrialError("the search is done" if self.search.done else
                                       "waiting for the running trials of this generation")
        return self._hand_out(parameter_id, row)

    def receive_trial_result(self, parameter_id: int, parameters: Any, value: Any, **kwargs: Any) -> None:
        sample = self._sample_of_metric(parameter_id, parameters, value)
        if sample is None:
            return
        score = metric_score(value)
        if math.isnan(score):
            _logger.warning("OFAEvolutionTuner: trial of parameter id %s reported no usable 'default' (%r); "
                            "its subnet counts as failed", parameter_id, value)
        self._tell(self.canonical_arch(sample), self.arch_space.to_indices(sample), score, parameter_id)
        self._serve_owed()

    def trial_end(self, parameter_id: int, success: bool, **kwargs: Any) -> None:
        self._running.discard(parameter_id)
        if not success:
            _logger.warning("OFAEvolutionTuner: trial of parameter id %s ended without success", parameter_id)
        resumed = self._resumed.pop(parameter_id, None)
        if resumed is not None and resumed in self._unscored:
            # NNI reruns a resumed trial with the parameters it recorded for it, which no other trial
            # gets: nobody else can report this subnet.
            row, _ = self._unscored[resumed]
            _logger.warning("OFAEvolutionTuner: no result came for %s (resumed trial of parameter id %s); counted "
                            "as failed", resumed, parameter_id)
            self._tell(resumed, row, math.nan, parameter_id)
        if not self._running:
            # No trial can report any more: the subnets still unscored never will be. (Giving up
            # earlier would guess: under a mix-up a failed trial's subnet may be reported by another.)
            for arch, (row, dispatched_id) in list(self._unscored.items()):
                _logger.warning("OFAEvolutionTuner: no result came for %s (parameter id %s); counted as failed",
                                arch, dispatched_id)
                self._tell(arch, row, math.nan, dispatched_id)
        self._serve_owed()

    def load_checkpoint(self) -> None:
        """NNI's dispatcher resumes an experiment: apply ``ofa_nni``'s NNI 3.0 workarounds now, before
        the dispatcher receives its first command (workaround 9 orders a resumed dispatcher's commands)."""
        from ofa_nni import _nni_compat

        _nni_compat.apply()
        _logger.info("OFAEvolutionTuner: resuming; the search continues from the earlier trials NNI imports")

    def resumed_trials(self, trials: Mapping[int, Any]) -> None:
        """The trials NNI runs again after a resume (``{parameter id: parameters}``, NNI's record of what
        each was given; workaround 9 of ``ofa_nni._nni_compat``): running, so their subnets are not
        proposed again; one that ends without a result counts as failed."""
        for parameter_id, parameters in trials.items():
            self._running.add(parameter_id)  # it ends (trial_end) whether or not it reports
            try:
                sample = self.arch_space.validate(parameters)
            except ValueError as error:
                _logger.warning("OFAEvolutionTuner: resumed trial of parameter id %s has no subnet of the space: %s",
                                parameter_id, error)
                continue
            arch = self.canonical_arch(sample)
            self._handed_out[parameter_id] = sample
            self._resumed[parameter_id] = arch
            if arch not in self.scores:
                self._unscored[arch] = (self.arch_space.to_indices(sample), parameter_id)
            _logger.info("OFAEvolutionTuner: resumed trial of parameter id %s runs %s again%s", parameter_id, arch,
                         " (scored before: its result will be ignored)" if arch in self.scores else "")

    def import_data(self, data: list[dict[str, Any]]) -> None:
        """Tell the engine the results of earlier trials (``[{'parameter': ..., 'value': ...}, ...]``)."""
        told = 0
        for entry in data:
            sample = self._sample_of_metric(None, entry.get("parameter"), entry.get("value"))
            if sample is not None:
                self._tell(self.canonical_arch(sample), self.arch_space.to_indices(sample),
                           metric_score(entry.get("value")), None)
                told += 1
        _logger.info("OFAEvolutionTuner: imported %d of %d earlier results", told, len(data))
        self._serve_owed()

    # ------------------------------------------------------------------ helpers
    def _next_row(self) -> np.ndarray | None:
        if not self._queue and not self.search.done:
            # ask() repeats this generation's subnets not scored yet: skip the running ones (handed
            # out, or resumed from before a restart), so that none is proposed twice.
            self._queue.extend(row for row in self.search.ask()
                               if self.canonical_arch(self.arch_space.from_indices(row)) not in self._unscored)
        return self._queue.popleft() if self._queue else None

    def _serve_owed(self) -> None:
        while self._owed and self._send_trial is not None:
            row = self._next_row()
            if row is None:
                if self.search.done:
                    self._owed.clear()
                return
            parameter_id = self._owed.popleft()
            self._send_trial(parameter_id, self._hand_out(parameter_id, row))

    def _hand_out(self, parameter_id: int, row: np.ndarray) -> Sample:
        # Canonical, so that NNI's record of the parameters (web UI, exported data), this log and the
        # trial's metric write the subnet the same way.
        arch = self.canonical_arch(self.arch_space.from_indices(row))
        sample = self.arch_space.parse(arch)
        self._handed_out[parameter_id] = sample
        self._unscored[arch] = (row, parameter_id)
        self._running.add(parameter_id)
        _logger.info("OFAEvolutionTuner: proposed arch %s (parameter id %s, generation %d)", arch, parameter_id,
                     self.search.generation + 1)
        return sample

    def _tell(self, arch: str, row: np.ndarray, score: float, parameter_id: int | None) -> None:
        self._unscored.pop(arch, None)
        if arch in self.scores:
            _logger.info("OFAEvolutionTuner: %s was scored before; result of parameter id %s ignored",
                         arch, parameter_id)
            return
        self.scores[arch] = score
        signed = -score if self.optimize_mode == "minimize" else score
        self.search.tell(row[None], np.array([signed]))
        _logger.info("OFAEvolutionTuner: told arch %s score %s (parameter id %s); %d scored, generation %d",
                     arch, score, parameter_id, len(self.scores), self.search.generation)

    def _sample_of_metric(self, parameter_id: int | None, parameters: Any, value: Any) -> Sample | None:
        """The subnet a metric belongs to: its ``arch`` if it has one (parsed), else the subnet handed
        out under ``parameter_id`` (or, for imported data, ``parameters``)."""
        from_parameters: Sample | None = self._handed_out.get(parameter_id) if parameter_id is not None else None
        if from_parameters is None and parameters is not None:
            # NNI's own record; it can be clobbered ('' after a partly served request), hence ours first.
            try:
                from_parameters = self.arch_space.validate(parameters)
            except ValueError as error:
                _logger.warning("OFAEvolutionTuner: parameters of id %s are not a subnet of the space: %s",
                                parameter_id, error)
        arch = value.get("arch") if isinstance(value, Mapping) else None
        if arch is None:
            if from_parameters is not None:
                _logger.warning("OFAEvolutionTuner: metric of parameter id %s carries no 'arch'; crediting the "
                                "subnet handed out under that id (unsafe with trialConcurrency > 1)", parameter_id)
            else:
                _logger.error("OFAEvolutionTuner: metric of parameter id %s has neither an 'arch' nor a known "
                              "subnet; ignored", parameter_id)
            return from_parameters
        try:
            sample = self.arch_space.parse(arch)
        except ValueError as error:
            _logger.error("OFAEvolutionTuner: metric of parameter id %s has an invalid arch (%s); %s", parameter_id,
                          error, "crediting the subnet of its id" if from_parameters is not None else "ignored")
            return from_parameters
        if from_parameters is not None and self.canonical_arch(from_parameters) != self.canonical_arch(sample):
            _logger.warning("OFAEvolutionTuner: parameter id %s was given %s but its trial ran %s (NNI mixed up "
                            "parameters under concurrency); crediting the arch the trial reports",
                            parameter_id, self.arch_space.format(from_parameters), arch)
        return sample

    def canonical_arch(self, sample: Sample) -> str:
        """:func:`canonical_arch` of ``sample`` in the tuner's space: the key of :attr:`scores`."""
        return canonical_arch(self.arch_space, sample)


def canonical_arch(space: ArchSpace, sample: Mapping[str, Any]) -> str:
    """The arch string of ``sample`` with inactive blocks set to their first choice: two samples have
    the same string iff they are the same subnet. The one form the tuner hands out and logs, and the
    trial (``python -m strategies.nni_trial``) and :class:`strategies.RecalibratedEvaluator` report."""
    return space.format(space.canonical_sample(sample))


def _absolute_path(name: str, path: str) -> Path:
    resolved = Path(path).expanduser()
    if not resolved.is_absolute():
        raise InvalidInputError(
            f"classArgs.{name} must be an absolute path (NNI starts the tuner in the experiment's log directory), "
            f"got {path!r}"
        )
    if not resolved.is_file():
        raise MissingInputError(f"classArgs.{name}: {str(resolved)!r} does not exist")
    return resolved
