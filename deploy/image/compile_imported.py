"""Run inside the image's root filesystem by customize.sh: byte-code for the modules gpupolicy imports, only.

Imports every module of the gpupolicy package, and every module those import anywhere in their code (subcommands
import their heavy libraries, the kubernetes client, grpc, NVML, inside functions: found in the syntax tree), then
compiles each loaded module's source with unchecked hashes: valid whatever the files' times, never rewritten at run
time. Modules nothing imports stay source only (about 25 MB less than
compiling everything; they would compile in memory on the rare occasion they are loaded).
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
import py_compile
import sys


def _imported_anywhere() -> set[str]:
    """Absolute module names in the import statements of every loaded gpupolicy module, at any depth."""
    names: set[str] = set()
    for module in list(sys.modules.values()):
        source = getattr(module, "__file__", None)
        if not (source and source.endswith(".py") and module.__name__.startswith("gpupolicy.")):
            continue
        with open(source, encoding="utf-8") as f:
            tree = ast.parse(f.read(), source)
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module)
                names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def main() -> int:
    failed = []
    for top in ("gpupolicy.policy", "gpupolicy.solver", "gpupolicy.plugin"):
        package = importlib.import_module(top)
        for info in pkgutil.walk_packages(package.__path__, prefix=f"{top}."):
            try:
                importlib.import_module(info.name)
            except Exception as exc:  # reported, and the build fails: the image could not run that module
                failed.append(f"{info.name}: {type(exc).__name__}: {exc}")
    for name in sorted(_imported_anywhere()):
        try:
            importlib.import_module(name)
        except ImportError:
            pass  # an optional library (matplotlib: the plot extra) or a name imported from a module, not a module
        except Exception as exc:  # only loses that module's byte-code; said, not fatal
            print(f"compile_imported: {name} does not import: {type(exc).__name__}: {exc}", file=sys.stderr)
    if failed:
        print("compile_imported: modules that fail to import in the image:", *failed, sep="\n  ", file=sys.stderr)
        return 1
    count = 0
    for module in list(sys.modules.values()):
        source = getattr(module, "__file__", None)
        if source and source.endswith(".py"):
            py_compile.compile(source, doraise=True, invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
            count += 1
    print(f"compile_imported: {count} modules compiled", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
