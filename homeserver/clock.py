"""The wall clock as the log and the protocol count it: milliseconds since the epoch."""

from __future__ import annotations

import time


def now_ms() -> int:
    return int(time.time() * 1000)
