"""Locating and loading the shared test vectors (never copied into the code)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

VECTORS = Path(__file__).resolve().parents[1].parent / "shared" / "vectors"


def path(*parts: str) -> Path:
    p = VECTORS.joinpath(*parts)
    if not p.exists():
        raise FileNotFoundError(f"test vector file missing: {p} (../shared must sit beside the repo)")
    return p


def load_json(*parts: str) -> Any:
    return json.loads(path(*parts).read_text())


def text(*parts: str) -> str:
    return path(*parts).read_text()
