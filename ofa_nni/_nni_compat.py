"""The one place for NNI 3.0 workarounds on today's torch / Lightning / numpy.

NNI 3.0 (its last release, 2023) predates torch 2.2+, Lightning 2.2+, numpy 2 and setuptools 81.
Each workaround below names what breaks; :func:`apply` is called when ``ofa_nni`` is imported and
is idempotent. ``tests/test_nni_compat.py`` checks both that every patch is still *needed* (the
unpatched behaviour still fails) and that it *works*, so a future NNI or torch release that fixes
or changes the behaviour makes a test fail instead of leaving dead code here.

1. Import-time RuntimeWarnings: ``nni.nas.nn.pytorch.layers`` wraps every class in ``torch.nn``
   and warns for each one that is not a Module (``torch.nn.Buffer``, ...), once per process.
2. ``MixedOperation.freeze`` (one-shot supermodules, e.g. NNI's own MobileNetV3Space under
   ``RandomOneShot``) builds a state dict with ``{'bias': None}`` for bias-free convs, which
   ``load_state_dict`` of torch >= 2.x rejects; the patch drops ``None`` entries.
3. ``nnictl`` imports ``pkg_resources``: pinned ``setuptools<81`` in pyproject.toml (not a patch).
4. ``NasExperiment`` with the sequential engine (every one-shot and our multi-trial strategies)
   warns "`training_service` will be ignored" about the default it set itself, at every config
   canonicalisation (about ten times a run); a logging filter drops that one message.
5. Import order: ``nni.nas.oneshot.pytorch.strategy`` imports ``nni.nas.strategy``, whose
   ``oneshot`` module imports the former back; if the former is imported first (as a subclass of
   ``OneShotStrategy`` does), the cycle fails silently and ``nni.nas.strategy.RandomOneShot``, DARTS,
   ENAS, ... become ``ImportFailedStrategy`` for the whole process. Importing ``nni.nas.strategy``
   first breaks the cycle.
6. Checkpoints of ``NasExperiment``: NNI saves one when the experiment starts and one when it stops
   (``stop``, also at exit through ``atexit``), never in between, and writes ``state.ckpt`` in place.
   After ``kill -9`` (OOM killer, a lost node, a preempted job) the only checkpoint is the one from the
   start, so ``NasExperiment(..., id=...).resume()`` evaluates every model again; a kill during a save
   leaves a truncated file. The patch saves after every model the sequential engine finishes (a
   TrainingEnd callback; the engine runs models in the strategy's thread, so the strategy's state is
   consistent then) and writes both files atomically (temporary file + ``os.replace``). With
   :class:`strategies.OFAEvolution`, a resumed run re-evaluates at most the model that was running.
7. NNI's web UI / REST server (``nni_node``, started by ``nni.experiment.launcher``) calls
   ``app.listen(port)``, which binds every interface, with no option to choose one: anyone on the
   network could read and control the experiment. The launcher's ``Popen`` is wrapped so that node
   starts with ``NODE_OPTIONS=--require <ofa_nni/_nni_bind_loopback.js>``, a preload that binds listen
   calls that name no host to ``$OFA_NNI_BIND_HOST`` (default ``127.0.0.1``; ``0.0.0.0`` exposes it on
   purpose, e.g. for remote training services). That covers experiments started from Python with
   ``ofa_nni`` imported; ``nnictl`` never imports it, so ``ofa-nni nni create|resume|view`` runs nnictl
   with :func:`nni_manager_environment`.
8. Resuming an nnictl experiment whose manager was killed (``kill -9``, OOM): the manager's tuner
   process (NNI's "dispatcher") outlives it, retries its connection for about 20 s, then reports an
   error to whatever listens on the port by then. ``nnictl resume`` on the same port within that
   window starts a manager that receives the error and stops ("Dispatcher stream error, tuner may
   have crashed", status ERROR). :func:`wait_for_orphaned_dispatchers` waits until the orphaned
   tuner of the experiment has exited; ``ofa-nni nni resume`` calls it before ``nnictl resume``. (Not
   a patch, so not part of :func:`apply`.)
9. ``nnictl resume`` of an experiment whose trials were running at the kill: NNI's manager starts
   those trials again at once, before the new tuner is initialised, and asks the dispatcher for a
   trial for each one that ends. Its dispatcher processes commands in arrival order, so a resumed
   trial's metric and that request can come before the resume data (``IMPORT_DATA``: the finished
   trials; ``ADD_CUSTOMIZED_TRIAL_JOB``: the resumed ones, sent after the tuner reports
   ``INITIALIZED``). The metric is then dropped ("Find unknown job parameter id"), the request gets
   parameter ids from 0 again and a tuner that knows nothing yet (a subnet evaluated twice), and the
   next metric of such an id is taken for one of the earlier run: ``KeyError`` in
   ``get_previous_param``, the dispatcher stops and no new trial starts. The patch holds a resumed
   dispatcher's metrics, trial ends and trial requests until it has processed the resume data, then
   processes them: metrics, then trial ends, then requests (new ids then follow every resumed one;
   NNI numbers them from the highest resumed id, so ids of finished earlier trials can recur, as on
   any NNI resume). A tuner with a ``resumed_trials(trials)`` method
   (:class:`strategies.OFAEvolutionTuner`) is also told the resumed trials (``{parameter id:
   parameters}``) and gets their metrics and ends like its own trials' (``receive_trial_result``,
   ``trial_end``); NNI gives other tuners a resumed trial's metric as ``import_data`` and drops its
   end. The dispatcher runs in its own process (``python -m nni``) and imports ``ofa_nni`` only when
   the tuner does: ``OFAEvolutionTuner.load_checkpoint``, which NNI's dispatcher calls when resuming
   before it receives any command, imports it.
10. A tuner that raises -- e.g. ``OFAEvolutionTuner`` refusing its settings or the search space at the
   first ``update_search_space`` -- leaves the experiment RUNNING with no trial, for good: NNI's
   dispatcher logs the exception in ``dispatcher.log``, stops its worker thread and reports nothing
   (``MsgDispatcherBase.command_queue_worker``; the error report of ``nni.__main__`` runs only when
   ``run()`` raises, which it does not, and ``run()`` returns only after the next command, which never
   comes: the manager's pings are never sent). The worker is wrapped to report the first exception to
   the manager at once (``CommandType.Error``) as one line, ``<Tuner>: <message>`` (the traceback stays
   in ``dispatcher.log``): the experiment ends in ERROR. The dispatcher runs in its own process and
   imports ``ofa_nni`` only through the tuner, so :mod:`strategies.nni_tuner` applies this
   (:func:`report_dispatcher_errors`, light) when it is imported. NNI's manager then records
   "Dispatcher stream error, tuner may have crashed." in place of the message; the manager preload
   :data:`MANAGER_FIXES_SCRIPT` (with :func:`nni_manager_environment`, as in workaround 7) makes the
   status -- ``nnictl experiment status``, the web UI's error banner -- carry the tuner's line. A
   tuner that raises while NNI's dispatcher *constructs* it (a setting it refuses: ``population_size:
   -3``, a misspelt key, a missing supernet) leaves no worker to wrap: the dispatcher process exits,
   the experiment shows RUNNING with no trial, then ERROR "Tuner did not connect in 120 seconds", and
   the message is only in ``dispatcher.log``. :class:`strategies.OFAEvolutionTuner` therefore keeps
   such an error when :func:`in_nni_dispatcher` and raises it at its first command instead, where the
   wrapped worker reports it.
11. Parameters swapped between trials running at once (``trialConcurrency > 1``): NNI 3.0's local
   training service (``nni_node/training_service/v3/compat.js``, ``V3asV1``) queues the parameters of
   the trials it submits and gives the queue's head to whichever trial *asks* first
   (``nni.get_next_parameter()``), so when a later trial's process asks first the two trials run each
   other's parameters, while NNI records (web UI Parameters, hyper-parameter chart, exported CSV) the
   ones each was submitted with. The manager preload :data:`MANAGER_FIXES_SCRIPT` hands every trial
   the parameters it was submitted with (the trial id is mapped to its sequence id when the trial
   is created; NNI already serves resumed trials this way). Like workaround 7 it covers
   ``ofa-nni nni create|resume|view`` and experiments started from Python with ``ofa_nni`` imported;
   plain ``nnictl`` still swaps (trials then still report the arch they ran in their metric).
   ``ofa-nni nni create|resume|view`` also prints only the web UI address NNI's manager listens on
   (NNI prints every interface's address, though workaround 7 binds one).
13. Starting on a loaded machine: ``nnictl create`` (and ``Experiment.start``) give NNI's manager about
   3 s to answer on its port (``launcher._check_rest_server``, 3 tries a second apart), and the manager
   gives the tuner process 10 s to connect; ``python -m nni`` alone takes 7-10 s to import NNI with
   two cores shared by a dozen busy processes. Either ends the start ("Create experiment failed:
   ... Connection refused", or ERROR "Tuner did not connect in 10 seconds"). The launcher is given
   60 tries (:func:`prepare_nnictl` for ``ofa-nni nni create|resume|view``, and :func:`apply`), the
   manager preload :data:`MANAGER_FIXES_SCRIPT` waits 120 s for the tuner.
12. Not a bug of NNI but a trap of its evaluation path: NNI's multi-trial strategies hand the evaluator a
   subnet frozen from the supernet (``Evaluator._execute``: ``model.executable_model()``), and a frozen
   OFA subnet still holds the supernet's batch-norm statistics, which fit no subnet (accuracies of
   0.3-0.9 instead of 0.98-0.99 after recalibration). NNI has no hook to recalibrate there, so
   ``Evaluator._execute`` is wrapped: when the model space is an OFA supernet (it has an
   ``arch_space``) and, once evaluated, the subnet was not recalibrated
   (:func:`ofa_nni.runtime.is_recalibrated`), it warns once per process, naming the evaluator to use
   (``strategies.RecalibratedEvaluator``).
"""

from __future__ import annotations

import logging
import os
import subprocess
import threading
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "apply",
    "in_nni_dispatcher",
    "NON_MODULE_WARNING",
    "TRAINING_SERVICE_WARNING",
    "NNI_ORIGINALS",
    "nni_original",
    "BIND_HOST_ENV",
    "BIND_LOOPBACK_SCRIPT",
    "nni_manager_environment",
    "orphaned_dispatchers",
    "wait_for_orphaned_dispatchers",
    "RESUMED_TRIALS_METHOD",
    "UNRECALIBRATED_WARNING",
    "MANAGER_FIXES_SCRIPT",
    "report_dispatcher_errors",
    "dispatcher_error_message",
    "reachable_urls",
    "prepare_nnictl",
    "NNICTL_BOUND",
    "MANAGER_START_TRIES",
]

NON_MODULE_WARNING = r".* is found to be not a nn\.Module, which is unexpected"
"""Message pattern of NNI's import-time RuntimeWarning (workaround 1)."""

TRAINING_SERVICE_WARNING = "`training_service` will be ignored for sequential execution engine."
"""NNI's self-inflicted warning (workaround 4)."""
NAS_CONFIG_LOGGER = "nni.nas.experiment.config.experiment"

NNI_ORIGINALS: dict[str, Any] = {}
"""What each workaround replaced, by ``"Owner.name"`` (e.g. ``"MixedOperation.freeze"``,
``"nni.experiment.launcher.Popen"``): NNI's own code, which the replacements call and tests run to
show a workaround is still needed. Filled by :func:`_patch` only; a record, not a switch."""
UNRECALIBRATED_WARNING = (
    "NNI evaluated a subnet of the OFA supernet {space} with the supernet's batch-norm statistics, which fit "
    "no subnet (its accuracy reads far too low). Evaluate with strategies.RecalibratedEvaluator(calibration_data, "
    "held_out_data), which recalibrates BN first (OFA, Sec. 3.3), or call ofa_nni.runtime.recalibrate_batchnorm "
    "in your evaluation function."
)
"""The warning of workaround 12 (``{space}``: the space's class name)."""
_WARNED_UNRECALIBRATED = "_ofa_nni_warned_unrecalibrated"
"""Attribute set on a supernet once workaround 12 has warned about it: one warning per supernet."""
RESUMED_TRIALS_METHOD = "resumed_trials"
"""The tuner method a resumed dispatcher calls with the trials NNI runs again (workaround 9)."""

BIND_HOST_ENV = "OFA_NNI_BIND_HOST"
"""Environment variable naming the address NNI's manager binds (default ``127.0.0.1``; workaround 7)."""
BIND_LOOPBACK_SCRIPT = Path(__file__).with_name("_nni_bind_loopback.js")
"""The Node.js preload of workaround 7 (shipped as package data)."""
MANAGER_FIXES_SCRIPT = Path(__file__).with_name("_nni_manager_fixes.js")
"""The Node.js preload of workarounds 10 and 11 (shipped as package data)."""

_logger = logging.getLogger(__name__)


def _mixed_operation_freeze(self: Any, sample: Any) -> Any:
    """``MixedOperation.freeze`` of NNI 3.0, without ``None`` entries in the copied state dict."""
    arguments = {**self.init_arguments}
    for name, mutable in self.mutable_arguments.items():
        arguments[name] = mutable.freeze(sample)
    operation = self.bound_type(**arguments)
    state_dict = {key: value for key, value in self.freeze_weight(**arguments).items() if value is not None}
    operation.load_state_dict(state_dict)
    return operation


class _DropTrainingServiceWarning(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != TRAINING_SERVICE_WARNING


TRAINING_SERVICE_FILTER = _DropTrainingServiceWarning()


_WORKAROUND_MARK = "_ofa_nni_workaround"
"""Attribute set on every replacement this module installs (and on its logging filters): a target
that holds one is patched already, whichever copy of this module patched it."""


def _patch(owner: Any, name: str, replacement: Any) -> None:
    """Replace ``owner.name`` by ``replacement`` unless one of our workarounds is there already, and
    record what was there (NNI's original) in :data:`NNI_ORIGINALS`.

    How every workaround stays applied once, however often :func:`apply` runs (or a second copy of
    this module applies it), with no flag to keep.
    """
    current = getattr(owner, name)
    if getattr(current, _WORKAROUND_MARK, False):
        return
    setattr(replacement, _WORKAROUND_MARK, True)
    NNI_ORIGINALS[f"{owner.__name__}.{name}"] = current
    setattr(owner, name, replacement)


def nni_original(key: str) -> Any:
    """NNI's own code that the workaround at ``key`` (``"Owner.name"``) replaced."""
    return NNI_ORIGINALS[key]


def _add_filter_once(logger: logging.Logger, log_filter: logging.Filter) -> None:
    """Add ``log_filter`` to ``logger`` unless a filter of ours of the same kind is there already."""
    kind = type(log_filter).__name__
    if not any(getattr(f, _WORKAROUND_MARK, False) and type(f).__name__ == kind for f in logger.filters):
        setattr(log_filter, _WORKAROUND_MARK, True)
        logger.addFilter(log_filter)


def apply() -> None:
    """Apply the workarounds (idempotent: each one is installed once, see :func:`_patch`)."""
    # ``filterwarnings`` replaces an identical filter rather than adding a second one.
    warnings.filterwarnings("ignore", message=NON_MODULE_WARNING, category=RuntimeWarning)
    from nni.nas.oneshot.pytorch.supermodule.operation import MixedOperation

    _patch(MixedOperation, "freeze", _mixed_operation_freeze)
    _add_filter_once(logging.getLogger(NAS_CONFIG_LOGGER), TRAINING_SERVICE_FILTER)
    _import_nni_strategies_first()
    _checkpoint_after_every_model()
    _start_nni_manager_on_bind_host()
    _process_resumed_commands_in_order()
    _warn_when_evaluated_without_recalibration()
    report_dispatcher_errors()
    prepare_nnictl()


def _import_nni_strategies_first() -> None:
    """Workaround 5: import ``nni.nas.strategy`` before anyone imports NNI's one-shot strategies."""
    import nni.nas.strategy  # noqa: F401


# ------------------------------------------------------------------ 6. checkpoints after every model
def _checkpoint_after_every_model() -> None:
    from nni.nas.experiment import NasExperiment

    for name, replacement in (("save_checkpoint", _save_checkpoint_atomically),
                              ("execution_engine_factory", _engine_checkpointing_every_model)):
        _patch(NasExperiment, name, replacement)


def _engine_checkpointing_every_model(self: Any, config: Any) -> Any:
    """NNI's engine factory; a sequential engine also checkpoints the experiment after each model."""
    from nni.nas.execution import SequentialExecutionEngine
    from nni.nas.execution.event import ModelEventType

    engine = nni_original("NasExperiment.execution_engine_factory")(self, config)
    if isinstance(engine, SequentialExecutionEngine):
        # Runs before the model's status is updated but after its final metric arrived: strategies
        # that keep finished-but-untold models in their state (OFAEvolution) lose nothing.
        engine.register_model_event_callback(
            ModelEventType.TrainingEnd, lambda event: _save_checkpoint_atomically(self, level=logging.DEBUG)
        )
    return engine


def _save_checkpoint_atomically(self: Any, level: int = logging.INFO) -> None:
    """``NasExperiment.save_checkpoint`` (the same two files), each replaced atomically."""
    import nni
    from nni.nas.utils.serializer import get_default_serializer

    from ofa_nni._artifacts import atomic_write

    try:
        directory = Path(self._checkpoint_directory)
        config_text = nni.dump(self.config.json(), indent=2)
        atomic_write(directory / "config.json", lambda file: file.write(config_text.encode()))
        if self._engine is not None:
            serializer = get_default_serializer()
            # Serializers append their suffix to the path they are given.
            temporary = directory / f".state.ckpt.{os.getpid()}.tmp"
            written = Path(f"{temporary}{serializer.suffix}")
            try:
                serializer.save(self.state_dict(), temporary)
                with open(written, "rb") as file:
                    os.fsync(file.fileno())
                os.replace(written, directory / f"state.ckpt{serializer.suffix}")
            finally:
                written.unlink(missing_ok=True)
        _logger.log(level, "Checkpoint saved to %s.", directory)
    except Exception:  # as NNI's: a failed checkpoint must not end the experiment
        _logger.exception("Error occurred when saving checkpoint.")


# ------------------------------------------------------------------ 7. NNI manager on loopback
def nni_manager_environment(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """A copy of ``environ`` (default: ``os.environ``) in which Node.js preloads
    :data:`BIND_LOOPBACK_SCRIPT` and :data:`MANAGER_FIXES_SCRIPT`: NNI's manager started with it binds
    ``$OFA_NNI_BIND_HOST`` (default ``127.0.0.1``) instead of every interface (workaround 7), shows a
    tuner's error message (10) and gives each trial its own parameters (11). Other ``NODE_OPTIONS``
    are kept."""
    env = dict(os.environ if environ is None else environ)
    for script in (BIND_LOOPBACK_SCRIPT, MANAGER_FIXES_SCRIPT):
        quoted = str(script).replace("\\", "\\\\").replace('"', '\\"')
        require = f'--require "{quoted}"'
        options = env.get("NODE_OPTIONS", "")
        if require not in options:
            env["NODE_OPTIONS"] = f"{options} {require}".strip()
    return env


NNICTL_BOUND = (
    "import sys; from ofa_nni._nni_compat import prepare_nnictl; prepare_nnictl(); "
    "from nni.tools.nnictl.nnictl import parse_args; sys.argv[0] = 'nnictl'; parse_args()"
)
"""``python -c`` code running nnictl (arguments after it) prepared by :func:`prepare_nnictl`."""
MANAGER_START_TRIES = 60
"""Seconds (tries) NNI's launcher waits for its manager to answer (workaround 13; NNI: 3)."""


def prepare_nnictl() -> None:
    """Before nnictl runs in this process: its banner lists only :func:`reachable_urls`, and it waits
    :data:`MANAGER_START_TRIES` seconds for NNI's manager to start (workaround 13)."""
    show_reachable_urls()
    _wait_longer_for_the_manager()


def _wait_longer_for_the_manager() -> None:
    from nni.experiment import launcher

    _patch(launcher, "_check_rest_server", _check_rest_server_longer)


def _check_rest_server_longer(port: int, retry: int = 3, url_prefix: str | None = None) -> None:
    """``launcher._check_rest_server``, waiting at least :data:`MANAGER_START_TRIES` tries."""
    nni_original("nni.experiment.launcher._check_rest_server")(port, max(retry, MANAGER_START_TRIES), url_prefix)


def reachable_urls(urls: list[str], environ: Mapping[str, str] | None = None) -> list[str]:
    """Of the web UI addresses NNI prints (one per network interface), those NNI's manager listens on
    when bound to ``$OFA_NNI_BIND_HOST`` (workaround 7): all for ``0.0.0.0`` / ``::``, else the bind
    host's (added if NNI did not list it)."""
    from urllib.parse import urlsplit

    host = (os.environ if environ is None else environ).get(BIND_HOST_ENV) or "127.0.0.1"
    if host in ("0.0.0.0", "::", ""):
        return list(urls)
    kept = [url for url in urls if urlsplit(url).hostname == host]
    if not kept and urls:
        parts = urlsplit(urls[0])
        kept = [parts._replace(netloc=f"{host}:{parts.port}").geturl()]
    return kept


class _ReachableUrlsOnly(logging.Filter):
    """Rewrites NNI's "Web portal URLs: ..." line (``nni.experiment``) to :func:`reachable_urls`."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = str(record.msg)
        if record.args or not message.startswith("Web portal URLs:"):
            return True
        head, _, listed = message.partition("${CYAN}")
        urls = (listed or message.removeprefix("Web portal URLs:")).split()
        record.msg = f"{head or 'Web portal URLs: '}{'${CYAN}' if listed else ''}{' '.join(reachable_urls(urls))}"
        return True


def show_reachable_urls() -> None:
    """Make NNI's experiment banner list only the web UI addresses that work (idempotent)."""
    logger = logging.getLogger("nni.experiment")
    _add_filter_once(logger, _ReachableUrlsOnly())


def _popen_nni_manager(*args: Any, **kwargs: Any) -> subprocess.Popen[Any]:
    kwargs["env"] = nni_manager_environment(kwargs.get("env"))
    process: subprocess.Popen[Any] = nni_original("nni.experiment.launcher.Popen")(*args, **kwargs)
    return process


def _start_nni_manager_on_bind_host() -> None:
    from nni.experiment import launcher

    _patch(launcher, "Popen", _popen_nni_manager)


# ------------------------------------------------------------------ 8. the tuner of a killed manager
def orphaned_dispatchers(experiment_id: str) -> list[Any]:
    """Tuner processes (NNI's dispatcher: ``sh -c "python -m nni --exp_params ..."``) of
    ``experiment_id`` whose NNI manager is gone, as ``psutil.Process`` objects. NNI starts the
    dispatcher with ``SDK_PROCESS=dispatcher`` and ``NNI_LOG_DIRECTORY=<experiments>/<id>/log`` in
    its environment."""
    import psutil

    found = []
    for process in psutil.process_iter():
        try:
            environment = process.environ()
            if environment.get("SDK_PROCESS") != "dispatcher":
                continue
            if Path(environment.get("NNI_LOG_DIRECTORY", "")).parent.name != experiment_id:
                continue
            # NNI's node starts it through a shell; with the manager alive, node is an ancestor.
            if any("nni_node" in part for ancestor in process.parents() for part in ancestor.cmdline()):
                continue
        except (psutil.Error, OSError):  # gone meanwhile, or another user's
            continue
        found.append(process)
    return found


def wait_for_orphaned_dispatchers(experiment_id: str, timeout: float = 120.0) -> list[int]:
    """Wait until no orphaned tuner of ``experiment_id`` runs (workaround 8); returns the pids
    waited for. Raises ``RuntimeError`` naming them if they are still there after ``timeout`` s."""
    import psutil

    orphans = orphaned_dispatchers(experiment_id)
    if orphans:
        _logger.warning("waiting for the tuner of experiment %s's killed NNI manager to exit (pid %s)",
                        experiment_id, ", ".join(str(p.pid) for p in orphans))
    _, alive = psutil.wait_procs(orphans, timeout=timeout)
    if alive:
        raise RuntimeError(
            f"the tuner process(es) {[p.pid for p in alive]} of experiment {experiment_id}'s killed NNI manager "
            f"still run after {timeout:.0f} s; end them (kill PID) before resuming, or the resumed manager fails"
        )
    return [p.pid for p in orphans]


# ------------------------------------------------------------------ 9. order of a resumed dispatcher's commands
class _ResumeOrder:
    """One resumed dispatcher's commands that wait until it has processed the resume data."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.held: list[tuple[Any, Any]] = []
        self.resumed = False


def _resume_order(dispatcher: Any) -> _ResumeOrder | None:
    """The dispatcher's :class:`_ResumeOrder` (made at its first command); None when not resuming."""
    from nni.runtime.env_vars import dispatcher_env_vars

    if dispatcher_env_vars.NNI_MODE != "resume":
        return None
    order: _ResumeOrder = vars(dispatcher).setdefault("_ofa_nni_resume_order", _ResumeOrder())
    return order


def _process_command_in_resume_order(self: Any, command: Any, data: Any) -> None:
    """``MsgDispatcher.process_command``; a resumed dispatcher holds metrics, trial ends and trial
    requests until it has processed ``ADD_CUSTOMIZED_TRIAL_JOB`` (the resume data), then processes them."""
    from nni.runtime.tuner_command_channel import CommandType

    process = nni_original("MsgDispatcher.process_command")
    order = _resume_order(self)
    if order is None:
        process(self, command, data)
        return
    # Replayed in causal order: a trial's metric comes before its end (NNI's two worker threads may
    # have picked them up the other way round), which comes before the request that end triggered.
    held_kinds = (CommandType.ReportMetricData, CommandType.TrialEnd, CommandType.RequestTrialJobs)
    with order.lock:
        if not order.resumed and command in held_kinds:
            _logger.info("resumed NNI dispatcher: %s held until the resume data is processed", command.name)
            order.held.append((command, data))
            return
    process(self, command, data)
    if command is CommandType.AddCustomizedTrialJob:
        with order.lock:  # the other worker thread waits here: nothing overtakes the held commands
            order.resumed = True
            _take_over_resumed_trials(self)
            held = sorted(order.held, key=lambda entry: held_kinds.index(entry[0]))  # stable
            order.held = []
            for held_command, held_data in held:
                process(self, held_command, held_data)


def _take_over_resumed_trials(dispatcher: Any) -> None:
    """Tell a tuner with a ``resumed_trials`` method the trials NNI runs again and route their
    metrics and ends to it as to its own trials (NNI: ``import_data`` for the metric, end dropped)."""
    from nni.runtime import msg_dispatcher

    tell = getattr(dispatcher.tuner, RESUMED_TRIALS_METHOD, None)
    if tell is None:
        return
    resumed = dict(dispatcher.recovered_trial_params)
    tell(resumed)
    msg_dispatcher._trial_params.update(resumed)  # type: ignore[attr-defined]
    dispatcher.recovered_max_param_id = -1  # no id counts as the earlier run's any more


def _process_resumed_commands_in_order() -> None:
    from nni.runtime.msg_dispatcher import MsgDispatcher

    _patch(MsgDispatcher, "process_command", _process_command_in_resume_order)


# ------------------------------------------------------------------ 12. OFA subnets evaluated without recalibration
def _execute_warning_without_recalibration(self: Any, model: Any) -> Any:
    """``Evaluator._execute``: evaluate the model's executable model; warn (once) if it is a frozen OFA
    subnet whose batch norms nobody recalibrated (not when it is the supernet itself, which a one-shot
    strategy's training runs: ``ofa-nni train`` warned at its end, naming a Python API the user had no
    part in)."""
    supernet = getattr(model, "model_space", None)
    if getattr(supernet, "arch_space", None) is None or vars(supernet).get(_WARNED_UNRECALIBRATED):
        return nni_original("Evaluator._execute")(self, model)
    from ofa_nni.runtime import is_recalibrated

    executable = model.executable_model()
    result = self.evaluate(executable)
    # A one-shot strategy's model is the supernet itself (it trains it): no subnet is evaluated then.
    if executable is not supernet and not is_recalibrated(executable) and not vars(supernet).get(
            _WARNED_UNRECALIBRATED):
        # Remembered on the supernet, not in a module flag: each supernet warns once.
        vars(supernet)[_WARNED_UNRECALIBRATED] = True
        warnings.warn(UNRECALIBRATED_WARNING.format(space=type(supernet).__name__), UserWarning, stacklevel=2)
    return result


def _warn_when_evaluated_without_recalibration() -> None:
    from nni.nas.evaluator import Evaluator

    _patch(Evaluator, "_execute", _execute_warning_without_recalibration)


# ------------------------------------------------------------------ 10. a tuner's error ends the experiment
def dispatcher_error_message(dispatcher: Any, error: BaseException) -> str:
    """The one line NNI shows for ``error`` raised in ``dispatcher``'s tuner: ``<Tuner>: <message>`` for
    input the user can fix (:class:`ofa_nni.errors.InvalidInputError`), with the exception's type
    otherwise."""
    from ofa_nni.errors import InvalidInputError

    owner = getattr(dispatcher, "tuner", None) or dispatcher
    text = " ".join(str(error).split())
    if isinstance(error, InvalidInputError):
        return f"{type(owner).__name__}: {text}"
    return (f"{type(owner).__name__} failed: {type(error).__name__}: {text} "
            "(traceback in the experiment's dispatcher.log)")


def _command_queue_worker_reporting_errors(self: Any, command_queue: Any) -> None:
    """``MsgDispatcherBase.command_queue_worker``; when a command raised, the first exception is
    reported to NNI's manager at once, which ends the experiment in ERROR (workaround 10)."""
    nni_original("MsgDispatcherBase.command_queue_worker")(self, command_queue)
    with _report_lock:
        if not self.worker_exceptions or vars(self).get("_ofa_nni_error_reported"):
            return
        self._ofa_nni_error_reported = True
    self.report_error(dispatcher_error_message(self, self.worker_exceptions[0]))


_report_lock = threading.Lock()


def in_nni_dispatcher() -> bool:
    """Whether this process is NNI's dispatcher (``python -m nni``, which builds and runs a tuner).
    A tuner constructed there defers the errors of its arguments to its first command (workaround 10)."""
    from nni.runtime.env_vars import dispatcher_env_vars

    return bool(dispatcher_env_vars.SDK_PROCESS == "dispatcher")


def report_dispatcher_errors() -> None:
    """Apply workaround 10 (idempotent; light: NNI's dispatcher modules only)."""
    from nni.runtime.msg_dispatcher_base import MsgDispatcherBase

    _patch(MsgDispatcherBase, "command_queue_worker", _command_queue_worker_reporting_errors)
