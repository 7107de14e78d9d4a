"""``gpupolicy select --inventory FILE [-o json] EXPRESSION``: debug a device selector.

Evaluates one CEL device selector against every device of the inventory (ResourceSlices as
``kubectl get resourceslices -o yaml`` prints them, or cluster descriptions expanded through the
builder, optionally under ``--policy``). Only the newest generation of each pool counts, as in the
scheduler. A runtime error on a device is reported for that device, never taken as false.

Exit 0 when the expression compiled and no device gave a runtime error; 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from gpupolicy.plugin.cli.files import read_source


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--inventory", action="append", required=True, metavar="FILE", help="slices or cluster")
    parser.add_argument("--policy", metavar="FILE", help="GpuPolicy used to expand cluster descriptions")
    parser.add_argument("-o", "--output", choices=["table", "json"], default="table", help="output format")
    parser.add_argument("expression", help="a CEL expression over `device`, as in a DeviceClass selector")


def evaluate(expression: str, inventory: list[tuple[str, str]], policy: tuple[str, str] | None) -> dict[str, Any]:
    """The ``-o json`` document: matches and per-device errors, in pool/device order."""
    from gpupolicy.policy.cel import CelRuntimeError, compile_expression
    from gpupolicy.policy.errors import Location
    from gpupolicy.policy.k8s.view import gather_pools
    from gpupolicy.solver.inputs import read_inputs

    program = compile_expression(expression, Location("<expression>", 1, 1), env="selector")
    slices = read_inputs(inventory, [], policy).slices
    devices = [dev for pool in gather_pools(slices) for dev in pool.devices]
    results = program.evaluate_devices([dev.view for dev in devices])
    matches: list[dict[str, str | None]] = []
    errors: list[dict[str, str]] = []
    for dev, result in zip(devices, results):
        ident = f"{dev.id.pool}/{dev.id.device}"
        if isinstance(result, CelRuntimeError):
            errors.append({"device": ident, "code": result.code, "message": result.message})
        elif result is True:
            node = dev.node_name or ("*" if dev.all_nodes else None)
            matches.append({"pool": dev.id.pool, "device": dev.id.device, "driver": dev.id.driver, "node": node})
    return {"matches": matches, "errors": errors, "_total": len(devices)}


def run(args: argparse.Namespace) -> int:
    policy = read_source(args.policy) if args.policy else None
    inventory = [read_source(path) for path in args.inventory]
    out = evaluate(args.expression, inventory, policy)
    total = out.pop("_total")
    if args.output == "json":
        print(json.dumps(out, indent=2, sort_keys=True))
    else:
        for m in out["matches"]:
            print(f"{m['pool']}/{m['device']}  driver={m['driver']}  node={m['node'] or '-'}")
        for e in out["errors"]:
            print(f"{e['device']}: {e['code']}: {e['message']}", file=sys.stderr)
        print(f"{len(out['matches'])} of {total} devices match, {len(out['errors'])} errors", file=sys.stderr)
    return 1 if out["errors"] else 0
