"""Crash points for tests: ``GPUPOLICY_PLUGIN_CRASH_AT=<step>`` SIGKILLs the plugin at that step.

The steps, in order, are listed in ``PREPARE_STEPS``, ``UNPREPARE_STEPS`` (a claim with MIG instances or
sharing) and ``PLAIN_UNPREPARE_STEPS`` (a claim with only a CDI spec); the crash tests kill the plugin at
each one, restart it and check that kubelet's retry (or a prepare instead) succeeds and nothing leaks.
"""

from __future__ import annotations

import os
import signal

ENV = "GPUPOLICY_PLUGIN_CRASH_AT"
PREPARE_STEPS = ("prepare-started", "prepare-mig", "prepare-sharing", "prepare-cdi", "prepare-completed")
UNPREPARE_STEPS = ("unprepare-started", "unprepare-sharing", "unprepare-cdi", "unprepare-mig", "unprepare-done")
PLAIN_UNPREPARE_STEPS = ("unprepare-dropped", "unprepare-cdi")


def crash_point(step: str) -> None:
    if os.environ.get(ENV) == step:
        os.kill(os.getpid(), signal.SIGKILL)
