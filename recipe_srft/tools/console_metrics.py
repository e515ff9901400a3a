"""Reads the per-step metrics that verl's ``console`` logger prints (``step:N - key:value - ...``)."""

from __future__ import annotations

import re
from pathlib import Path

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_NUMBER = re.compile(r"^(?:np\.\w+\()?([-+0-9.eE]+|nan|inf|-inf)\)?$")


def _value(text: str):
    m = _NUMBER.match(text.strip())
    if not m:
        return None
    try:
        return float(m.group(1))
    except ValueError:
        return None


def parse_console_metrics(text: str) -> list[dict[str, float]]:
    """One dict per ``step:`` line (numeric values only), in order of appearance, with ``step``."""
    rows = []
    for line in _ANSI.sub("", text).splitlines():
        idx = line.find("step:")
        if idx < 0 or " - " not in line[idx:]:
            continue
        row = {}
        for item in line[idx:].split(" - "):
            key, sep, val = item.rpartition(":")
            if not sep:
                continue
            v = _value(val)
            if v is not None:
                row[key.strip()] = v
        if "step" in row:
            row["step"] = int(row["step"])
            rows.append(row)
    return rows


def read_console_metrics(path: str | Path) -> list[dict[str, float]]:
    return parse_console_metrics(Path(path).read_text(errors="replace"))
