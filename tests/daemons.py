"""Start real Canal daemons on 127.0.0.1 with ephemeral ports (shared with `canal demo`)."""

from __future__ import annotations

from canal.procs import ChainProcess, LightningProcess, in_parallel, wait_for

__all__ = ["ChainProcess", "LightningProcess", "in_parallel", "wait_for"]
