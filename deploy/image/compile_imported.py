"""Run inside the image's root filesystem by customize.sh: byte-code for the modules gpupolicy imports, only.

Imports every module of the gpupolicy package (the heavy libraries each subcommand loads are imported at the top of
the modules that use them), then compiles each loaded module's source with unchecked hashes: valid whatever the
files' times, never rewritten at run time. Modules nothing imports stay source only (about 25 MB less than
compiling everything; they would compile in memory on the rare occasion they are loaded).
"""

from __future__ import annotations

import importlib
import pkgutil
import py_compile
import sys


def main() -> int:
    failed = []
    for top in ("gpupolicy.policy", "gpupolicy.solver", "gpupolicy.plugin"):
        package = importlib.import_module(top)
        for info in pkgutil.walk_packages(package.__path__, prefix=f"{top}."):
            try:
                importlib.import_module(info.name)
            except Exception as exc:  # reported, and the build fails: the image could not run that module
                failed.append(f"{info.name}: {type(exc).__name__}: {exc}")
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
