"""Daemon logging as bitcoind does it: to `debug.log` in the data dir and to stderr."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

__all__ = ["setup_logging"]


def setup_logging(datadir: Path, name: str, verbose: bool = False) -> None:
    """Send every logger's records to `datadir/debug.log` and stderr (DEBUG with `verbose`)."""
    datadir.mkdir(parents=True, exist_ok=True)
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    root = logging.getLogger()
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    for h in list(root.handlers):
        root.removeHandler(h)
    file_handler = logging.FileHandler(datadir / "debug.log")
    file_handler.setFormatter(fmt)
    err = logging.StreamHandler(sys.stderr)
    err.setFormatter(fmt)
    root.addHandler(file_handler)
    root.addHandler(err)
    logging.getLogger(name).info("starting, logging to %s", datadir / "debug.log")
