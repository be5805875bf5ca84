"""Who ran a CLI run: the process identity stamped on it, and whether that process still lives.

A `sentinel backfill` killed with SIGKILL cannot mark its run failed, so the run would stay
STARTED in the instance forever (and hold the sentinel/pipeline concurrency slot). Each CLI run
carries its host, pid and the pid's start time; the next CLI command or the daemon's sensor
fails the runs whose process is gone. The start time guards against a reused pid.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

HOST_TAG = "sentinel/cli_host"
PID_TAG = "sentinel/cli_pid"
START_TAG = "sentinel/cli_pid_start"


def _start_time(pid: int) -> str:
    """The process's start time in clock ticks since boot (Linux), '' where unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[-1].split()[19]  # field 22, counted after the command name


def identity_tags() -> dict[str, str]:
    """Tags naming this process, for the runs it makes."""
    pid = os.getpid()
    return {HOST_TAG: socket.gethostname(), PID_TAG: str(pid), START_TAG: _start_time(pid)}


def is_gone(tags: dict[str, str]) -> bool:
    """True when the tags name a process on this host that no longer runs. A process on
    another host is never judged (it may well be alive)."""
    if tags.get(HOST_TAG) != socket.gethostname() or not tags.get(PID_TAG, "").isdigit():
        return False
    pid = int(tags[PID_TAG])
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # alive, someone else's
    started = tags.get(START_TAG, "")
    return bool(started) and _start_time(pid) not in ("", started)  # the pid was reused
