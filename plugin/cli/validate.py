"""``gpupolicy validate FILE_OR_DIR...``: check every object in every file, print every error.

Accepts GpuPolicy files, cluster descriptions and Kubernetes objects (DeviceClass,
ResourceClaim, ResourceClaimTemplate, ResourceSlice, Pod and workloads) in v1, v1beta2 or
v1beta1, several per file. Directories are searched for ``*.yaml``/``*.yml``. Errors are
printed sorted as ``file:line:col: code: message``. Exit 0 when all is valid, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", metavar="FILE_OR_DIR", help="files or directories to validate")
    parser.add_argument("-o", "--output", choices=["text", "json"], default="text", help="output format")


def expand_paths(paths: list[str]) -> tuple[list[Path], list[str]]:
    """Files to read (directories searched recursively, sorted) and paths that do not exist."""
    files: list[Path] = []
    missing: list[str] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())
        elif path.exists():
            files.append(path)
        else:
            missing.append(raw)
    return files, missing


def run(args: argparse.Namespace) -> int:
    from gpupolicy.plugin.cli.files import read_source
    from gpupolicy.policy.errors import Diagnostic, DiagnosticError, Location, sorted_diagnostics
    from gpupolicy.policy.validate import validate_text

    files, missing = expand_paths(args.paths)
    problems = [Diagnostic("file_not_found", "no such file or directory", Location(m)) for m in missing]
    objects = 0
    for path in files:
        try:
            text, name = read_source(path)
        except DiagnosticError as err:
            problems += err.diagnostics
            continue
        count, found = validate_text(text, name)
        objects += count
        problems += found
    problems = sorted_diagnostics(problems)
    if args.output == "json":
        out = {"files": len(files), "objects": objects, "errors": [d.to_json() for d in problems]}
        print(json.dumps(out, indent=2, sort_keys=True))
    else:
        for diagnostic in problems:
            print(diagnostic)
        verdict = "invalid" if problems else "valid"
        print(f"{len(files)} files, {objects} objects: {verdict} ({len(problems)} errors)", file=sys.stderr)
    return 1 if problems else 0
