"""A teardown that runs to the end: each step's failure is logged and remembered, the next step still runs.

A claim's teardown stops MPS daemons, resets time-slicing, removes its CDI spec and destroys its MIG instances. When
one of these fails (a daemon that hangs, a file that cannot be removed), the others must still happen: a MIG
instance left behind because a CDI file could not be removed would block its GPU until the plugin restarts. After
the last step, :meth:`Steps.finish` raises one :class:`TeardownError` naming every failed step, so that the claim's
record is kept and kubelet's retry (or the next start) tears down again; every step tolerates what is already gone.

A path that a step refuses to touch (:class:`~gpupolicy.plugin.kubelet.paths.UnsafePath`: it would leave its root)
is logged and not retried: no later attempt could remove it either.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

from gpupolicy.plugin.kubelet.nvml.types import NvmlError
from gpupolicy.plugin.kubelet.paths import UnsafePath
from gpupolicy.plugin.kubelet.sharing import CommandError

log = logging.getLogger(__name__)


class TeardownError(OSError):
    """Some steps of a teardown failed (all of them ran); the message names each."""


class Steps:
    """The steps of tearing down ``claim`` (a name for the log)."""

    def __init__(self, claim: str) -> None:
        self.claim = claim
        self.failures: list[str] = []

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[None]:
        """Run the block as step ``name``: an exception ends the block, not the teardown."""
        fields = {"claim": self.claim, "step": name}
        try:
            yield
        except UnsafePath as exc:
            log.warning("teardown of %s: %s: refused: %s", self.claim, name, exc, extra=fields)
        except (NvmlError, CommandError, OSError) as exc:
            log.warning("teardown of %s: %s failed: %s", self.claim, name, exc, extra=fields)
            self.failures.append(f"{name}: {exc}")
        except Exception as exc:  # a bug must not leave the other steps undone either
            log.exception("teardown of %s: %s failed unexpectedly", self.claim, name, extra=fields)
            self.failures.append(f"{name}: {type(exc).__name__}: {exc}")

    def finish(self) -> None:
        """Raise :class:`TeardownError` when a step failed."""
        if self.failures:
            raise TeardownError(f"teardown of {self.claim} incomplete: " + "; ".join(self.failures))
