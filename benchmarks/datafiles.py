"""Where the benchmarks' reference data lives: the repository's ``data/`` first, then ``../shared/data/``.

The repository ships what the benchmarks read (``data/README.md`` lists it, with sources and licences), so a clone
runs them alone. A ``shared`` folder beside the clone is an optional extra: a file the repository does not ship
(for example the FGD authors' fragmentation results) is taken from ``../shared/data/`` when it is there. A file in
neither place stops the benchmark with one message that names both places and where the file comes from.

Used by the benchmark scripts (``from datafiles import data_file``: a script's own folder is on ``sys.path``) and
by ``tests/test_data.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "data"
SHARED = REPO.parent / "shared" / "data"
SOURCES = {
    "openb": "Alibaba clusterdata cluster-trace-gpu-v2023 (openb), as in hkust-adsl/kubernetes-scheduler-simulator "
    "data/csv (Apache-2.0)",
    "fgd": "hkust-adsl/kubernetes-scheduler-simulator experiments/analysis/expected_results (Apache-2.0)",
}


class MissingData(SystemExit):
    """A data file found in no data folder; exits the benchmark with its message (no traceback)."""


def data_file(relative: str, roots: Sequence[Path] = (SHIPPED, SHARED)) -> Path:
    """The first ``root / relative`` that is a file, for ``relative`` like ``openb/openb_pod_list_default.csv``."""
    for root in roots:
        path = root / relative
        if path.is_file():
            return path
    folder = relative.split("/", 1)[0]
    source = SOURCES.get(folder, "see data/README.md")
    looked = " nor ".join(str(root / relative) for root in roots)
    raise MissingData(f"missing data file {relative}: not in {looked}; it comes from {source}")
