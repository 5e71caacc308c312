"""``ofa-nni nni``: what ``nnictl create --config`` needs -- the search-space JSON and the tuner's registration.

* ``ofa-nni nni search-space --supernet runs/digits/supernet.pt --out search_space.json`` writes NNI's
  search space (one ``choice`` per label) generated from the space; never write it by hand.
* ``ofa-nni nni register`` registers ``OFAEvolutionTuner`` as a built-in tuner name by running
  ``nnictl algo register --meta_path <meta file shipped in the package>``; ``ofa-nni nni unregister``
  removes it. NNI keeps registrations in ``<venv>/nni/registered_algorithms.yml`` inside a virtual
  environment (``$NNI_CONFIG_DIR`` when set, else ``~/.config/nni``).
* ``ofa-nni nni create --config config.yml --port 8080`` (and ``resume ID`` / ``view ID``) runs the same
  ``nnictl`` command with NNI's manager bound to 127.0.0.1 instead of every interface (NNI 3.0 has no
  option for it; :mod:`ofa_nni._nni_compat`, workaround 7). ``OFA_NNI_BIND_HOST=0.0.0.0`` exposes the
  web UI and REST API deliberately, e.g. for remote training services whose trials must reach the
  manager. ``resume`` first waits for the tuner of a killed manager to exit (workaround 8).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from ofa_nni.arch import ArchSpace
from ofa_nni.errors import InvalidInputError, MissingInputError, NotADirectoryInputError

_META_FILE = "ofa_evolution_tuner_meta.yml"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "nni",
        help="NNI experiments (nnictl): search-space JSON, tuner registration, create/resume/view on 127.0.0.1",
        description="Prepare 'nnictl create --config' (generate the search space JSON, register the tuner) and run "
                    "nnictl create/resume/view with the web UI bound to 127.0.0.1.",
    )
    actions = parser.add_subparsers(dest="nni_command", metavar="ACTION", required=True)

    space = actions.add_parser(
        "search-space",
        help="write NNI's search space JSON of a space",
        description="Generate NNI's search space ({label: {_type: choice, _value: [...]}}) from the space of a "
                    "trained supernet (--supernet) or of a preset (--preset, with optional choice overrides).",
    )
    source = space.add_mutually_exclusive_group(required=True)
    source.add_argument("--supernet", type=Path, help="trained supernet (supernet.pt or a training checkpoint)")
    source.add_argument("--preset", help="space preset of the training configuration (cpu, ofa-mobilenetv3; with "
                        "--space ofa-proxyless: cpu, ofa-proxylessnas; with --space ofa-resnet50: cpu, ofa-resnet50)")
    space.add_argument("--space", default=None, help="with --preset: the search space (ofa-mbv3, the default, "
                       "ofa-proxyless or ofa-resnet50)")
    space.add_argument("--kernel-sizes", type=int, nargs="+", help="with --preset: kernel size choices")
    space.add_argument("--expand-ratios", type=float, nargs="+", help="with --preset: expand ratio choices")
    space.add_argument("--depths", type=int, nargs="+", help="with --preset: depth choices")
    space.add_argument("--resolutions", type=int, nargs="+", help="with --preset: resolution choices")
    space.add_argument("--out", type=Path, default=None, help="output file (default: print to stdout)")
    space.set_defaults(func=run_search_space)

    reg = actions.add_parser(
        "register",
        help="register OFAEvolutionTuner with nnictl",
        description="Run 'nnictl algo register --meta_path <packaged meta file>' so that config.yml can name "
                    "the tuner 'OFAEvolutionTuner'.",
    )
    reg.add_argument("--print-meta", action="store_true", help="only print the meta file's path")
    reg.set_defaults(func=run_register)

    unreg = actions.add_parser("unregister", help="remove the OFAEvolutionTuner registration",
                               description="Run 'nnictl algo unregister OFAEvolutionTuner'.")
    unreg.set_defaults(func=run_unregister)

    for action in ("create", "resume", "view"):
        _add_nnictl_action(actions, action)


_BIND_NOTE = ("NNI's web UI and REST API listen on $OFA_NNI_BIND_HOST, default 127.0.0.1 (plain nnictl binds every "
              "interface); set OFA_NNI_BIND_HOST=0.0.0.0 to expose them deliberately.")


def _add_nnictl_action(actions: argparse._SubParsersAction, action: str) -> None:
    """``ofa-nni nni create|resume|view``: nnictl's command of that name, with the manager bound."""
    what = "--config CONFIG" if action == "create" else "ID"
    parser = actions.add_parser(action, help=f"nnictl {action}, web UI bound to 127.0.0.1",
                                description=f"Run 'nnictl {action} {what}'. {_BIND_NOTE}")
    if action == "create":
        parser.add_argument("--config", "-c", type=Path, required=True, help="the experiment's YAML configuration")
    else:
        parser.add_argument("id", help="the experiment's ID (nnictl experiment list --all)")
        parser.add_argument("--experiment-dir", "-e", type=Path,
                            help="the experiment's folder, when it is not in the default location")
    parser.add_argument("--port", "-p", type=int, default=8080, help="port of the web UI and REST API")
    if action != "view":
        parser.add_argument("--foreground", "-f", action="store_true", help="print NNI's log to the terminal")
        parser.add_argument("--debug", "-d", action="store_true", help="NNI's debug mode")
    parser.set_defaults(func=run_nnictl_bound, nnictl_action=action)


def _space_of(args: argparse.Namespace) -> ArchSpace:
    overrides = {name: getattr(args, name) for name in ("kernel_sizes", "expand_ratios", "depths", "resolutions",
                                                        "space")
                 if getattr(args, name) is not None}
    if args.supernet is not None:
        if overrides:
            raise InvalidInputError(f"--{next(iter(overrides)).replace('_', '-')} goes with --preset; with "
                                    "--supernet the space is the supernet's")
        from search_spaces import load_supernet

        space: ArchSpace = load_supernet(args.supernet).arch_space
        return space
    from ofa_nni.nni_search_space import arch_space_from_spec

    overrides["name"] = overrides.pop("space", "ofa-mbv3")
    return arch_space_from_spec({"preset": args.preset, **overrides})


def run_search_space(args: argparse.Namespace) -> int:
    from ofa_nni.nni_search_space import dumps_nni_search_space

    text = dumps_nni_search_space(_space_of(args))
    if args.out is None:
        sys.stdout.write(text)
        return 0
    from ofa_nni._artifacts import atomic_write

    atomic_write(args.out, lambda file: file.write(text.encode()))
    print(f"wrote {args.out} ({text.count('_type')} labels)")
    return 0


def meta_file() -> Path:
    """The registration meta file shipped in the ``strategies`` package (found without importing it)."""
    from importlib.util import find_spec

    spec = find_spec("strategies")
    if spec is None or not spec.submodule_search_locations:
        raise MissingInputError("the 'strategies' package of ofa-nni is not installed in this environment")
    return Path(next(iter(spec.submodule_search_locations))) / _META_FILE


def _meta() -> dict[str, str]:
    import yaml

    path = meta_file()
    if not path.is_file():
        raise MissingInputError(f"the tuner's meta file {str(path)!r} is missing from the installed package")
    meta: dict[str, str] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return meta


def _nnictl(*arguments: str, env: dict[str, str] | None = None, bound: bool = False) -> int:
    """Run ``nnictl ARGUMENTS``; ``bound``: prepared for the bound manager (``_nni_compat.prepare_nnictl``)."""
    from ofa_nni._nni_compat import NNICTL_BOUND

    start = ["-c", NNICTL_BOUND] if bound else ["-m", "nni.tools.nnictl.nnictl"]
    command = [sys.executable, *start, *arguments]
    print("$ nnictl " + " ".join(arguments), flush=True)
    return subprocess.run(command, env=os.environ.copy() if env is None else env, check=False).returncode


def _check_stopped_experiment(experiment_id: str, experiment_dir: Path | None, action: str) -> None:
    """nnictl answers an unknown or running experiment with a traceback (AttributeError on None)."""
    if experiment_dir is not None:
        if not (experiment_dir / experiment_id).is_dir():
            raise MissingInputError(f"no NNI experiment {experiment_id!r} in --experiment-dir {str(experiment_dir)!r} "
                                    f"(no folder {experiment_id} there)")
        return
    from nni.tools.nnictl.config_utils import Experiments
    from nni.tools.nnictl.nnictl_utils import update_experiment

    update_experiment()  # as nnictl does first: an experiment whose manager died is STOPPED now
    known = Experiments().get_all_experiments()
    if experiment_id not in known:
        raise MissingInputError(f"no NNI experiment {experiment_id!r} on this machine ('nnictl experiment list "
                                "--all' lists them; pass --experiment-dir for one kept elsewhere)")
    status = known[experiment_id].get("status")
    if status != "STOPPED":
        raise InvalidInputError(f"NNI experiment {experiment_id!r} is {status}, and only a stopped one can be "
                                f"{'resumed' if action == 'resume' else 'viewed'}: stop it first "
                                f"(nnictl stop {experiment_id})")


def _check_port_free(port: int) -> None:
    """NNI's launcher answers a port in use with a 20-line traceback ("Port ... is not idle")."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        if probe.connect_ex(("127.0.0.1", port)) == 0:
            raise InvalidInputError(f"--port {port} is in use (another NNI experiment's web UI, or another program, "
                                    "listens there); choose another port")


def run_nnictl_bound(args: argparse.Namespace) -> int:
    """``nnictl create|resume|view`` with NNI's manager bound to ``$OFA_NNI_BIND_HOST`` (127.0.0.1)."""
    from ofa_nni._nni_compat import nni_manager_environment

    if not 0 < args.port < 65536:
        raise InvalidInputError(f"--port must be a TCP port (1-65535), got {args.port}")
    arguments = [args.nnictl_action]
    if args.nnictl_action == "create":
        if not args.config.is_file():
            raise MissingInputError(f"experiment configuration {str(args.config)!r} does not exist")
        arguments += ["--config", str(args.config)]
    else:
        arguments.append(args.id)
        if args.experiment_dir is not None:
            if not args.experiment_dir.is_dir():
                raise NotADirectoryInputError(f"--experiment-dir {str(args.experiment_dir)!r} is not a directory")
            arguments += ["--experiment_dir", str(args.experiment_dir)]
        _check_stopped_experiment(args.id, args.experiment_dir, args.nnictl_action)
    _check_port_free(args.port)
    arguments += ["--port", str(args.port)]
    arguments += [flag for flag in ("--foreground", "--debug") if getattr(args, flag[2:], False)]
    if args.nnictl_action == "resume":
        from ofa_nni._nni_compat import wait_for_orphaned_dispatchers

        waited = wait_for_orphaned_dispatchers(args.id)
        if waited:
            print(f"the tuner of the killed NNI manager (pid {', '.join(map(str, waited))}) has exited", flush=True)
    return _nnictl(*arguments, env=nni_manager_environment(), bound=True)


def run_register(args: argparse.Namespace) -> int:
    meta = _meta()
    if args.print_meta:
        print(meta_file())
        return 0
    code = _nnictl("algo", "register", "--meta_path", str(meta_file()))
    from nni.runtime.config import get_config_directory
    from nni.tools.package_utils import get_algo_meta

    registered = get_algo_meta(meta["builtinName"])
    if code != 0 or registered is None or registered.class_name != meta["className"]:
        print(f"ofa-nni nni register: nnictl did not register {meta['builtinName']} (exit code {code})",
              file=sys.stderr)
        return 1
    print(f"{meta['builtinName']} registered in {get_config_directory() / 'registered_algorithms.yml'}")
    return 0


def run_unregister(args: argparse.Namespace) -> int:
    return _nnictl("algo", "unregister", _meta()["builtinName"])
