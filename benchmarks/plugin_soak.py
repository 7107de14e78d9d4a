"""Random-kill soak of the kubelet plugin: kill it again and again, at random moments, while a kubelet-like client
prepares and unprepares claims, and check after every answer and every restart that no claim answered as
prepared is missing its CDI spec, MIG instance, MPS daemon or time-slice setting.

Run: ``python benchmarks/plugin_soak.py [--kills 150] [--seed 1] [--time-limit 1200] [--plugin-src DIR]``

The plugin runs as its own process (``gpupolicy plugin run --nvml sim:2xA100-40GB:mig,2xH100-80GB``, the state of
the simulated GPUs and commands in its state folder) against the HTTP API-server stand-in. Five claims on
separate devices cover every kind of set-up: dynamic MIG with an MPS daemon (two), dynamic MIG alone, a whole GPU
with time-slicing, a whole GPU alone. Each round starts the plugin and kills it with SIGKILL in one of three
ways, chosen at random:

* ``crash-point``: ``GPUPOLICY_PLUGIN_CRASH_AT`` names a random step of prepare or unprepare (``faults.py``);
  calls go on until one reaches it (at most 25);
* ``mid-call``: a timer kills the process 0-8 ms into a call (inside checkpoint and CDI writes, NVML calls,
  commands); every call gets one until the process dies (at most 25 calls);
* ``idle``: between calls (also where the two above did not land inside a call).

The client acts as kubelet may: a prepared claim is unprepared or prepared again; an unprepared one prepared; one
whose call was cut off by a kill is prepared or unprepared, either way (kubelet retries, or the pod went away, or
a new pod wants the claim). After every successful prepare, and after every restart for every claim the client
holds as prepared, the claim's CDI spec must exist and name the devices returned, the MIG instances and GPUs in its
``NVIDIA_VISIBLE_DEVICES`` must exist, its MPS daemon (the pipe folder it mounts) must run, and its GPU's
time-slice must be set. At the end every claim is unprepared (no kills) and the node must be clean: no MIG
instance, CDI spec, MPS daemon, time-slice setting, checkpoint record or temporary file left.

``--plugin-src DIR`` runs the plugin from another checkout (its repository root, e.g. an older commit unpacked with
``git archive``), to compare. Not a timed assertion: a report of counts. Bounded by ``--kills`` and ``--time-limit``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from gpupolicy.plugin.kubelet.faults import ENV, PLAIN_UNPREPARE_STEPS, PREPARE_STEPS, UNPREPARE_STEPS  # noqa: E402
from tests.fakes.kube_stub import StubApiServer  # noqa: E402
from tests.plugin.kubelet.helpers import DRIVER, NODE, claim_obj, opaque  # noqa: E402
from tests.plugin.kubelet.proc import PluginProcess  # noqa: E402

MPS = {"strategy": "MPS", "mpsConfig": {"defaultActiveThreadPercentage": 50}}
TIMESLICE = {"strategy": "TimeSlicing", "timeSlicingConfig": {"interval": "Medium"}}
CLAIMS: list[tuple[str, str, dict[str, Any] | None]] = [
    ("mig-mps-a", "gpu-0-mig-3g20gb-9-4", opaque("MigDeviceConfig", MPS)),
    ("mig-mps-b", "gpu-1-mig-2g10gb-14-2", opaque("MigDeviceConfig", MPS)),
    ("mig-plain", "gpu-0-mig-2g10gb-14-0", None),
    ("gpu-timeslice", "gpu-2", opaque("GpuConfig", TIMESLICE)),
    ("gpu-plain", "gpu-3", None),
]
STEPS = (*PREPARE_STEPS, *UNPREPARE_STEPS, *PLAIN_UNPREPARE_STEPS)
TMP = re.compile(r"\..+\.tmp-(\d+)-\d+")
Claim = tuple[str, str, str]


@dataclass
class Tally:
    kills: dict[str, int] = field(default_factory=lambda: {"crash-point": 0, "mid-call": 0, "idle": 0})
    calls: dict[str, int] = field(default_factory=lambda: {"prepare": 0, "unprepare": 0})
    answered_prepared: int = 0
    checked_after_restart: int = 0
    reprepare_after_cut_unprepare: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)
    stale_tmp: set[str] = field(default_factory=set)
    """Temporary files of a writer no longer running, seen while the plugin ran (each counted once)."""
    restarts: int = 0


class Soak:
    def __init__(self, root: Path, rng: random.Random, plugin_src: Path | None) -> None:
        self.api = StubApiServer().start()
        self.api._httpd.handle_error = lambda request, address: None  # type: ignore[method-assign]  # killed clients
        self.api.kube.put_node(NODE)
        self.plugin = PluginProcess(root, self.api.write_kubeconfig(root / "kubeconfig"))
        self.env = {"PYTHONPATH": str(_link_tree(root, plugin_src))} if plugin_src else {}
        self.kubelet = self.plugin.kubelet()
        self.rng = rng
        self.tally = Tally()
        self.claims: list[Claim] = []
        for name, device, config in CLAIMS:
            doc = self.api.kube.put_claim(claim_obj(name, [("r", device)], config=[config] if config else None))
            self.claims.append(("default", doc["metadata"]["uid"], name))
        self.held: dict[str, str] = {c[1]: "unprepared" for c in self.claims}
        """Per claim, as the client sees it: ``prepared``, ``unprepared`` or ``cut-prepare``/``cut-unprepare``
        (the call was cut off by a kill: its outcome unknown)."""

    # --- what the node has --------------------------------------------------------------------

    def _json(self, name: str) -> Any:
        path = self.plugin.state_dir / name
        return json.loads(path.read_text()) if path.exists() else {}

    def check(self, uid: str, devices: list[str] | None, when: str) -> None:
        """The claim is set up: its spec, and everything the spec points at, exists."""
        spec_path = self.plugin.cdi_root / f"k8s.{DRIVER}-claim_{uid}.json"
        problems = []
        try:
            spec = json.loads(spec_path.read_text())
        except (OSError, ValueError) as exc:
            problems.append(f"no CDI spec ({exc.__class__.__name__})")
            spec = {"devices": []}
        names = {d["name"] for d in spec["devices"]}
        if devices is not None and not {f"{uid}-{d}" for d in devices} <= names:
            problems.append(f"CDI spec lacks {sorted(devices)}")
        instances = {i["uuid"] for g in self._json("sim-nvml.json").get("gpus", []) for i in g["instances"]}
        commands = self._json("sim-commands.json") or {"timeslice": {}, "mps": {}}
        for device in spec["devices"]:
            edits = device["containerEdits"]
            env = dict(e.split("=", 1) for e in edits.get("env", []))
            for visible in env.get("NVIDIA_VISIBLE_DEVICES", "").split(","):
                if visible.startswith("MIG-") and visible not in instances:
                    problems.append(f"MIG instance {visible} missing")
            for mount in edits.get("mounts", []):
                if mount["hostPath"] not in commands["mps"]:
                    problems.append(f"MPS daemon on {mount['hostPath']} not running")
            if device["name"].endswith("-gpu-2") and not commands["timeslice"]:
                problems.append("time-slice of gpu-2 not set")
        if not spec["devices"] and not problems:
            problems.append("CDI spec without devices")
        if problems:
            self.tally.violations.append(f"{when}: claim {uid[:8]}: {'; '.join(problems)}")

    def stale_tmp(self) -> set[str]:
        pid = self.plugin.proc.pid if self.plugin.proc else -1
        found = set()
        for folder in (self.plugin.state_dir, self.plugin.cdi_root):
            for path in folder.iterdir() if folder.is_dir() else ():
                m = TMP.fullmatch(path.name)
                if m and int(m[1]) != pid:
                    found.add(path.name)
        return found

    # --- the client ---------------------------------------------------------------------------

    def call(self, claim: Claim, op: str, killer: threading.Timer | None) -> None:
        kubelet = self.kubelet
        uid = claim[1]
        before = self.held[uid]
        self.tally.calls[op] += 1
        if killer is not None:
            killer.start()
        try:
            response = (kubelet.prepare if op == "prepare" else kubelet.unprepare)([claim], timeout_s=0)
        except Exception:  # the plugin died under the call
            self.held[uid] = f"cut-{op}"
            raise
        finally:
            if killer is not None:
                killer.cancel()
        result = response.claims[uid]
        if result.error:
            code = result.error.split(":")[0][:60]
            self.tally.errors[code] = self.tally.errors.get(code, 0) + 1
            if op == "unprepare":
                self.held[uid] = "cut-unprepare"  # not torn down as far as kubelet knows: it retries
            elif before != "prepared":
                self.held[uid] = "cut-prepare"
            return
        if op == "prepare":
            self.tally.answered_prepared += 1
            if before == "cut-unprepare":
                self.tally.reprepare_after_cut_unprepare += 1
            self.check(uid, [d.device_name for d in result.devices], "after a prepare")
            self.held[uid] = "prepared"
        else:
            self.held[uid] = "unprepared"

    def next_op(self) -> tuple[Claim, str]:
        claim = self.rng.choice(self.claims)
        state = self.held[claim[1]]
        if state == "prepared":
            return claim, self.rng.choice(["unprepare", "unprepare", "prepare"])
        if state == "unprepared":
            return claim, "prepare"
        return claim, self.rng.choice(["prepare", "unprepare"])

    def round(self) -> None:
        mode = self.rng.choice(["crash-point", "crash-point", "mid-call", "mid-call", "idle"])
        env = dict(self.env)
        if mode == "crash-point":
            env[ENV] = self.rng.choice(STEPS)
        self.plugin.start(env)
        self.tally.restarts += 1
        self.kubelet = self.plugin.kubelet()
        self.kubelet.connect(timeout_s=60)  # registered: start-up reconciliation is done
        self.tally.stale_tmp |= self.stale_tmp()
        for uid, state in self.held.items():
            if state == "prepared":
                self.tally.checked_after_restart += 1
                self.check(uid, None, "after a restart")
        proc = self.plugin.proc
        assert proc is not None
        in_call = False
        for _ in range(self.rng.randint(1, 6) if mode == "idle" else 25):
            if proc.poll() is not None:
                break  # the timer killed it between calls
            claim, op = self.next_op()
            killer = threading.Timer(self.rng.uniform(0, 0.008), self._kill) if mode == "mid-call" else None
            try:
                self.call(claim, op, killer)
            except Exception:  # killed under the call
                in_call = True
                break
        if proc.poll() is None:  # no crash point met: killed between calls
            proc.kill()
        proc.wait(20)
        self.tally.kills[mode if in_call else "idle"] += 1
        self.kubelet.close()

    def _kill(self) -> None:
        if self.plugin.proc is not None and self.plugin.proc.poll() is None:
            self.plugin.proc.kill()

    def finish(self) -> list[str]:
        """Unprepare everything without kills; what is left on the node."""
        self.plugin.start(dict(self.env))
        kubelet = self.plugin.kubelet()
        kubelet.connect(timeout_s=60)
        for claim in self.claims:
            if self.held[claim[1]] == "prepared":
                self.check(claim[1], None, "at the end")
            error = kubelet.unprepare([claim], timeout_s=30).claims[claim[1]].error
            if error:
                self.tally.violations.append(f"final unprepare of {claim[1][:8]}: {error}")
        left = []
        if self.plugin.mig_instances():
            left.append(f"MIG instances {self.plugin.mig_instances()}")
        if self.plugin.cdi_files():
            left.append(f"CDI files {self.plugin.cdi_files()}")
        commands = self.plugin.commands_state()
        if commands["mps"] or commands["timeslice"]:
            left.append(f"commands {commands}")
        if self.plugin.checkpoint_claims():
            left.append(f"checkpoint records {list(self.plugin.checkpoint_claims())}")
        if stale := self.stale_tmp():
            left.append(f"{len(stale)} temporary files")
        self.plugin.terminate()
        kubelet.close()
        return left

    def close(self) -> None:
        self.plugin.kill()
        self.api.stop()


def _link_tree(root: Path, src: Path) -> Path:
    """A folder to put on ``PYTHONPATH`` whose ``gpupolicy`` package is the checkout ``src`` (as the installed
    package maps the repository's folders)."""
    tree = root / "src" / "gpupolicy"
    tree.mkdir(parents=True)
    for name in ("plugin", "policy", "solver"):
        (tree / name).symlink_to(src.resolve() / name)
    return tree.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=150, help="stop after this many kills")
    parser.add_argument("--time-limit", type=float, default=1200, help="or after this many seconds")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--plugin-src", type=Path, help="run the plugin from this checkout (repository root)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs, state)")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="plugin-soak-"))
    soak = Soak(root, random.Random(args.seed), args.plugin_src)
    started = time.monotonic()
    try:
        while sum(soak.tally.kills.values()) < args.kills and time.monotonic() - started < args.time_limit:
            soak.round()
        left = soak.finish()
    finally:
        soak.close()
    t = soak.tally
    wall = time.monotonic() - started
    print(f"plugin: {args.plugin_src or REPO}; seed {args.seed}; {wall:.0f} s")
    kinds = ", ".join(f"{kind} {count}" for kind, count in t.kills.items())
    print(f"kills: {sum(t.kills.values())} ({kinds}); restarts {t.restarts}")
    print(f"calls: {t.calls['prepare']} prepare, {t.calls['unprepare']} unprepare; per-claim errors {t.errors}")
    print(f"answered prepared: {t.answered_prepared} (after a cut-off unprepare: {t.reprepare_after_cut_unprepare})")
    print(f"prepared claims checked after a restart: {t.checked_after_restart}")
    print(f"temporary files of a dead writer found after a start (distinct): {len(t.stale_tmp)}")
    print(f"violations (prepared, but spec / MIG / MPS / time-slice missing): {len(t.violations)}")
    for violation in t.violations[:20]:
        print(f"  {violation}")
    print(f"left on the node at the end: {left or 'nothing'}")
    if args.keep:
        print(f"work folder: {root}")
    else:
        import shutil

        shutil.rmtree(root, ignore_errors=True)
    sys.exit(1 if t.violations or left else 0)


if __name__ == "__main__":
    os.environ.setdefault("GPUPOLICY_LOG_LEVEL", "info")
    main()
