"""How the controller's check before ungating (``fence.clash``, once per unit, as ``commit`` calls it) grows with the
batch and the cluster: N one-claim units against M listed claims, every claim allocated one whole GPU; walking
every claim per unit (the check before the cache) and with the claims indexed once per batch (``fence.Index``,
what ``commit`` does now).

Run: ``python benchmarks/fence_scaling.py 500x500 1000x1000 2000x2000 2541x5000`` (UNITSxCLAIMS); prints CPU
seconds for the whole batch.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from gpupolicy.plugin.controller.fence import Index, clash


def claim(i: int, allocated: bool) -> dict[str, Any]:
    obj: dict[str, Any] = {"metadata": {"namespace": "bench", "name": f"c{i}"}, "status": {}}
    if allocated:
        result = {"request": "gpu", "driver": "gpu.gpupolicy.dev", "pool": f"node-{i // 10}", "device": f"gpu-{i % 10}"}
        obj["status"]["allocation"] = {"devices": {"results": [result]}}
    return obj


def main(argv: list[str]) -> int:
    for arg in argv or ["500x500", "1000x1000", "2000x2000"]:
        units, total = map(int, arg.split("x"))
        fresh = {("bench", f"c{i}"): claim(i, True) for i in range(total)}
        before = {("bench", f"c{i}"): claim(i, False) for i in range(total)}  # solved against: none allocated
        planned = {k: v["status"]["allocation"] for k, v in fresh.items()}
        for indexed in (False, True):
            start = time.process_time()
            index = Index.of(fresh) if indexed else None
            for key in list(fresh)[:units]:
                why = clash([key], fresh, expected={key: planned[key]}, before=before, planned=planned, index=index)
                assert why == "", why
            spent = time.process_time() - start
            how = "indexed" if indexed else "walked"
            print(f"units={units} claims={total} {how}: {spent:.2f} CPU-s for the batch, "
                  f"{spent / units * 1000:.3f} ms per unit")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
