"""``gpupolicy``: the command line.

Each subcommand lives in its own module under ``gpupolicy.plugin.cli`` with two functions,
``add_arguments(parser)`` and ``run(args) -> int``. Modules import their heavy
dependencies (ortools, grpc, NVML, the kubernetes client) inside ``run`` only, so that
``gpupolicy validate`` never loads grpc or NVML. A subcommand module that is missing or fails to
import is an error of the installation, for every command: one line on stderr naming the module
and the cause (``subcommand_unavailable``), no traceback.

Exit codes: 0 success; 1 invalid input, unsatisfiable or unplaced claims; 2 usage error; 3 broken
installation (a subcommand module cannot be loaded).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import Protocol, cast

from gpupolicy.policy.errors import DiagnosticError

EXIT_OK = 0
EXIT_INVALID = 1
EXIT_USAGE = 2
EXIT_BROKEN = 3

# name -> (module, one-line help). Order is the order of ``gpupolicy --help``.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "validate": (
        "gpupolicy.plugin.cli.validate",
        "validate policies, DeviceClasses, claims, slices and cluster descriptions",
    ),
    "select": ("gpupolicy.plugin.cli.select", "evaluate one CEL device selector against an inventory"),
    "render": (
        "gpupolicy.plugin.cli.render",
        "print the DeviceClasses and ResourceSlices a policy yields for a cluster",
    ),
    "solve": ("gpupolicy.plugin.cli.solve", "dry-run placement of pending claims (CP-SAT or a baseline)"),
    "simulate": ("gpupolicy.plugin.cli.simulate", "replay a trace of arrivals against a cluster with a strategy"),
    "discover": ("gpupolicy.plugin.cli.discover", "show the GPUs NVML reports on this node"),
    "plugin": ("gpupolicy.plugin.cli.plugin_cmd", "the kubelet DRA plugin (plugin run)"),
    "controller": ("gpupolicy.plugin.cli.controller_cmd", "the placement controller that allocates gated pods' claims"),
}


class _Subcommand(Protocol):
    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace) -> int: ...


class SubcommandUnavailable(Exception):
    """A subcommand's module is missing, fails to import, or lacks ``add_arguments``/``run``."""

    def __init__(self, name: str, module: str, cause: str) -> None:
        super().__init__(f"subcommand_unavailable: cannot load '{name}' from {module}: {cause}")


def _load(name: str, module: str) -> _Subcommand:
    try:
        loaded = importlib.import_module(module)
    except Exception as exc:  # any failure to import is reported the same way, without a traceback
        raise SubcommandUnavailable(name, module, f"{type(exc).__name__}: {exc}") from exc
    lacking = [f for f in ("add_arguments", "run") if not callable(getattr(loaded, f, None))]
    if lacking:
        raise SubcommandUnavailable(name, module, f"the module has no {' or '.join(lacking)}")
    return cast(_Subcommand, loaded)


class _VersionAction(argparse.Action):
    """``--version``, computed only when asked for (it may run git)."""

    def __init__(self, option_strings: Sequence[str], dest: str, help: str | None = None) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, help=help)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, *_: object) -> None:
        from gpupolicy.plugin.cli.version import version_line

        print(version_line())
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gpupolicy",
        description="Policy-driven GPU placement for Kubernetes Dynamic Resource Allocation.",
    )
    parser.add_argument(
        "--version", action=_VersionAction, help="print the version and the git revision it was built from"
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        module = _load(name, module_name)
        sub = subparsers.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(sub)
        sub.set_defaults(_module=module)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        parser = build_parser()
    except SubcommandUnavailable as exc:
        print(f"gpupolicy: error: {exc}", file=sys.stderr)
        return EXIT_BROKEN
    args = parser.parse_args(argv)
    module = cast(_Subcommand, args._module)
    try:
        return module.run(args)
    except DiagnosticError as exc:
        for diagnostic in exc.diagnostics:
            print(diagnostic, file=sys.stderr)
        return EXIT_INVALID
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
