"""Printing results the way the CLIs do: tables for people, JSON for scripts."""

from __future__ import annotations

import json
import re
import sys
from decimal import Decimal
from typing import Any

from rich.console import Console
from rich.table import Table

__all__ = ["print_result", "to_json"]

_MARK = re.compile(r'"\x00dec:([-0-9.]+)\x00"')


def _mark(value: Any) -> Any:
    if isinstance(value, Decimal):
        return f"\x00dec:{value:f}\x00"
    if isinstance(value, dict):
        return {k: _mark(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_mark(v) for v in value]
    return value


def to_json(value: Any, indent: int | None = 2) -> str:
    """JSON with Decimal amounts written as exact numbers (0.10000000, as bitcoin-cli prints)."""
    text = json.dumps(_mark(value), indent=indent, ensure_ascii=False).replace("\\u0000", "\x00")
    return _MARK.sub(r"\1", text)


def print_result(value: Any, as_json: bool = False) -> None:
    if value is None:
        if as_json:
            print("null")
        return
    if as_json or not isinstance(value, (dict, list)):
        if isinstance(value, (dict, list)):
            print(to_json(value))
        elif isinstance(value, Decimal):
            print(format(value, "f"))
        elif isinstance(value, bool):
            print("true" if value else "false")
        else:
            print(value)
        return
    console = Console(highlight=False, width=None if sys.stdout.isatty() else 240)
    if isinstance(value, dict):
        table = Table(show_header=False, box=None, padding=(0, 2, 0, 0))
        table.add_column(style="bold")
        table.add_column()
        for k, v in value.items():
            table.add_row(str(k), _cell(v))
        console.print(table)
        return
    if not value:
        console.print("(none)")
        return
    if all(isinstance(v, dict) for v in value):
        cols: list[str] = []
        for row in value:
            for k in row:
                if k not in cols:
                    cols.append(k)
        table = Table(*cols)
        for row in value:
            table.add_row(*(_cell(row.get(c, "")) for c in cols))
        console.print(table)
    else:
        for v in value:
            console.print(_cell(v))


def _cell(v: Any) -> str:
    if isinstance(v, Decimal):
        return format(v, "f")
    if isinstance(v, (dict, list)):
        text = to_json(v, indent=None)
        return text if len(text) < 200 else f"<{len(v)} items>"
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)
