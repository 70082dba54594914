"""Durations and times as users write them: "500ms", "30s", "6h", "1h30m"; epoch ms or ISO 8601.

Every duration on the command line goes through parse_duration, so one spelling works
everywhere; format_duration writes the same spelling back (help texts, logs).
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime

# "ms" before "m": the alternation is tried in order.
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")


def parse_duration(text: str, *, allow_zero: bool = False) -> float:
    """Seconds in "500ms", "90s", "30m", "1h30m", "2d"; a bare number is seconds.

    Zero ("0s") only with allow_zero: most durations (a schedule, a timeout) must be positive.
    """
    text = text.strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        seconds = float(text)
    else:
        parts = _PART.findall(text)
        if not parts or "".join(n + u for n, u in parts) != text:
            raise ValueError(f"not a duration: {text!r} (e.g. 500ms, 30s, 1h30m, 2d)")
        seconds = sum(float(n) * _UNITS[u] for n, u in parts)
    if seconds < 0 or (seconds == 0 and not allow_zero):
        raise ValueError(f"duration must be positive: {text!r}")
    return seconds


def format_duration(seconds: float) -> str:
    """The shortest spelling parse_duration reads back: 0.5 -> "500ms", 600 -> "10m",
    5400 -> "1h30m", 4.5 -> "4.5s"."""
    if seconds < 1 and seconds != 0:
        return f"{seconds * 1000:g}ms"
    if seconds != int(seconds):
        return f"{seconds:g}s"
    rest = int(seconds)
    out = ""
    for unit in ("d", "h", "m", "s"):
        size = int(_UNITS[unit])
        if rest >= size:
            out += f"{rest // size}{unit}"
            rest %= size
    return out or "0s"


def parse_time(text: str, now_ms: int | None = None) -> int:
    """Epoch ms from epoch ms digits, an ISO 8601 time (UTC unless it says otherwise), or a
    duration meaning that long before now ("24h")."""
    now = int(time.time() * 1000) if now_ms is None else now_ms
    text = text.strip()
    if text.isdigit():
        return int(text)
    try:
        return now - int(parse_duration(text) * 1000)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"not a time: {text!r} (epoch ms, ISO 8601, or a duration ago)") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp() * 1000)
