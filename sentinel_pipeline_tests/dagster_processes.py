"""`dagster dev` (webserver + daemon, one code server) on a tmp instance, for tests that need the
real daemon running schedules and sensors and the real webserver answering GraphQL.

The processes get a session of their own, and the whole session is stopped at the end (the
code server and run workers they started included), never anything else.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

REPO = Path(__file__).resolve().parents[1]
WORKSPACE = REPO / "workspace.yaml"
LOCATION = "sentinel"  # workspace.yaml's location_name
REPOSITORY = "__repository__"  # the repository name of a Definitions object

T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_instance_yaml(home: Path) -> None:
    """A SQLite instance in ``home``: telemetry and the UI's welcome dialog off."""
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\nnux:\n  enabled: false\n")


def wait_for(what: str, probe: Callable[[], T | None], seconds: float,
             log: Path | None = None, interval: float = 0.5) -> T:
    """Call ``probe`` until it returns something other than None (or False); AssertionError
    naming ``what`` (and the log's tail) when ``seconds`` pass first."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            value = probe()
        except Exception as exc:  # noqa: BLE001  (SQLite busy, server not up yet: try again)
            value, last = None, exc
        else:
            last = None
        if value is not None and value is not False:
            return value
        if time.monotonic() > deadline:
            tail = log.read_text(errors="replace")[-4000:] if log and log.exists() else ""
            raise AssertionError(f"Timed out after {seconds:.0f} s waiting for {what}"
                                 + (f" (last error: {last!r})" if last else "")
                                 + (f"\n--- {log}:\n{tail}" if tail else ""))
        time.sleep(interval)


class DagsterDev:
    """A running `dagster dev`: its URL, its log, and a GraphQL helper."""

    def __init__(self, proc: subprocess.Popen[bytes], url: str, log: Path) -> None:
        self.proc, self.url, self.log = proc, url, log

    def graphql(self, query: str, variables: Mapping[str, Any] | None = None) -> dict[str, Any]:
        body = json.dumps({"query": query, "variables": dict(variables or {})}).encode()
        request = urllib.request.Request(f"{self.url}/graphql", data=body,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            payload: dict[str, Any] = json.loads(response.read())
        if payload.get("errors"):
            raise AssertionError(f"GraphQL errors: {payload['errors']}")
        return payload["data"]


def _server_up(proc: subprocess.Popen[bytes], url: str, log: Path) -> bool:
    if proc.poll() is not None:
        raise AssertionError(f"dagster dev exited ({proc.returncode}):\n"
                             f"{log.read_text(errors='replace')[-4000:]}")
    try:
        with urllib.request.urlopen(f"{url}/server_info", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGINT (dagster dev's own clean shutdown) to its session, then SIGKILL what is left."""
    for sig, grace in ((signal.SIGINT, 30), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            continue
        if sig == signal.SIGINT:  # the children may outlive their parent for a moment
            time.sleep(1)
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            return


@contextmanager
def dagster_dev(home: Path, env: Mapping[str, str], log: Path,
                startup_seconds: float = 180) -> Iterator[DagsterDev]:
    """`dagster dev -w workspace.yaml` on DAGSTER_HOME=``home`` with ``env`` (the whole
    environment of the processes); yields once the webserver answers."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    dagster = Path(sys.executable).with_name("dagster")
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [str(dagster), "dev", "-w", str(WORKSPACE), "-h", "127.0.0.1", "-p", str(port)],
            cwd=home.parent, env={**env, "DAGSTER_HOME": str(home)}, stdout=out,
            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for(f"the webserver at {url}", lambda: _server_up(proc, url, log),
                 startup_seconds, log)
        yield DagsterDev(proc, url, log)
    finally:
        _stop(proc)
