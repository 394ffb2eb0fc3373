"""Fault injection for crash tests: the daemon SIGKILLs itself at a named step of the commitment dance.

``CANAL_CRASH_AT`` names the step, optionally with the occurrence to die at
(``send:revoke_and_ack#2``: the second time). The channel manager calls
:meth:`CrashPoint.reached` at each step while it carries out a channel's effects:

* ``persist:<message>``: the channel's new state is on disk (sqlite, FULL) and
  ``<message>`` (the next message of that batch, e.g. ``commitment_signed``) is
  not sent yet;
* ``persist:on_<message>``: a Persist after which nothing is sent, while handling
  the received ``<message>`` (``on_command`` for our own calls);
* ``send:<message>``: ``<message>`` was handed to the encrypted transport.

``CANAL_CRASH_AT=trace`` logs every step's name (with its occurrence) and kills
nothing: how a test finds the steps of a scenario. Unset (the default), nothing
happens. Only for tests: a real kill, no cleanup.
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Mapping

__all__ = ["CrashPoint", "ENV"]

ENV = "CANAL_CRASH_AT"

log = logging.getLogger("canal.faults")


class CrashPoint:
    def __init__(self, spec: str | None) -> None:
        self.step: str | None = None
        self.occurrence = 1
        if spec:
            step, _, nth = spec.partition("#")
            self.step = step.strip()
            self.occurrence = int(nth) if nth else 1
            if self.occurrence < 1:
                raise ValueError(f"{ENV}: the occurrence must be 1 or more, got {spec!r}")
        self._seen = 0
        self._counts: dict[str, int] = {}

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> CrashPoint:
        return cls(env.get(ENV))

    def reached(self, step: str) -> bool:
        """Count `step`; SIGKILL this process when it is the armed one (returns False otherwise)."""
        if self.step == "trace":
            self._counts[step] = self._counts.get(step, 0) + 1
            log.warning("crash point %s#%d", step, self._counts[step])
            return False
        if self.step is None or step != self.step:
            return False
        self._seen += 1
        if self._seen < self.occurrence:
            return False
        log.warning("%s=%s: killing this process at %s", ENV, self.step, step)
        for handler in logging.getLogger().handlers:
            handler.flush()
        os.kill(os.getpid(), signal.SIGKILL)
        return True  # pragma: no cover (not reached)
