"""Fault injection shared by the hostile tests of long-running commands (pretrain, bench)."""

from __future__ import annotations

import subprocess
import time


def kill_after(proc: subprocess.Popen, count, target: int, extra_s: float,
               timeout: float = 300) -> bool:
    """SIGKILL ``proc`` ``extra_s`` seconds after ``count()`` reaches ``target``; False when the
    process ended first."""
    deadline = time.monotonic() + timeout
    while proc.poll() is None and count() < target and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(extra_s)
    if proc.poll() is not None:
        return False
    proc.kill()
    proc.wait(timeout=60)
    return True
