"""``gpupolicy``: the command line.

Each subcommand lives in its own module under ``gpupolicy.plugin.cli`` with two functions,
``add_arguments(parser)`` and ``run(args) -> int``. Modules import their heavy
dependencies (ortools, grpc, NVML, the kubernetes client) inside ``run`` only, so that
``gpupolicy validate`` never loads grpc or NVML.

Exit codes: 0 success; 1 invalid input, unsatisfiable or unplaced claims; 2 usage error.
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


def _load(module: str) -> _Subcommand | None:
    try:
        return cast(_Subcommand, importlib.import_module(module))
    except ModuleNotFoundError as exc:
        if exc.name == module:
            return None
        raise


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gpupolicy",
        description="Policy-driven GPU placement for Kubernetes Dynamic Resource Allocation.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        module = _load(module_name)
        if module is None:
            continue
        sub = subparsers.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(sub)
        sub.set_defaults(_module=module)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
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
