"""What every Canal daemon process does around its work: stop cleanly on a signal, and say where it serves.

``node.json`` in a daemon's data dir names the process (``pid``), its host and
ports, and whatever else its clients need (a chain, an identity key); it is
written atomically once the daemon serves, so a client (``canal chain``,
``canal ln``, the tests' process helpers) never reads half a file.
"""

from __future__ import annotations

import json
import logging
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import trio

__all__ = ["NODE_INFO_FILE", "stop_on_signals", "write_node_info"]

NODE_INFO_FILE = "node.json"


async def stop_on_signals(request_stop: Callable[[], None], log: logging.Logger | None = None) -> None:
    """Call ``request_stop`` on the first SIGTERM or SIGINT (run it as a task of the daemon's nursery)."""
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as sigs:
        async for _ in sigs:
            if log is not None:
                log.info("signal received, stopping")
            request_stop()
            return


def write_node_info(datadir: Path, **info: Any) -> None:
    """Write ``node.json`` (this process's pid, host 127.0.0.1 and ``info``) atomically."""
    data = {"pid": os.getpid(), "host": "127.0.0.1", **info}
    tmp = datadir / (NODE_INFO_FILE + ".tmp")
    tmp.write_text(json.dumps(data))
    tmp.replace(datadir / NODE_INFO_FILE)
