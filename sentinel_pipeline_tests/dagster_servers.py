"""A real ``dagster-webserver`` and ``dagster-daemon`` on the project's workspace, for tests that
drive Dagster the way the UI does: GraphQL to the webserver, backfills and the run queue run by
the daemon, runs in their own processes, on a temp DAGSTER_HOME and data dir.

One deliberate change to the daemon: its backfill loop runs every second instead of every 30 s
(``dagster._daemon.controller.DEFAULT_DAEMON_INTERVAL_SECONDS``, which dagster offers no setting
for), so a backfill is picked up and marked complete in seconds. Everything else is the
``dagster-daemon run`` entry point as installed.
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
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import yaml
from dagster._core.instance.ref import InstanceRef

REPO = Path(__file__).resolve().parents[1]
DAEMON_LOOP_SECONDS = 1

# `dagster-daemon run`, with the backfill loop's interval shortened (see the module docstring).
_DAEMON = f"""
import sys
import dagster._daemon.controller as controller
assert hasattr(controller, "DEFAULT_DAEMON_INTERVAL_SECONDS"), "dagster moved the daemon interval"
controller.DEFAULT_DAEMON_INTERVAL_SECONDS = {DAEMON_LOOP_SECONDS}
from dagster._daemon.cli import main
sys.argv = ["dagster-daemon", *sys.argv[1:]]
main()
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class GraphQLError(AssertionError):
    pass


@dataclass
class DagsterServers:
    url: str
    home: Path
    logs: dict[str, Path]
    procs: dict[str, subprocess.Popen[bytes]]

    def graphql(self, query: str, variables: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """POST a query to the webserver's /graphql; its ``data``, or GraphQLError."""
        body = json.dumps({"query": query, "variables": dict(variables or {})}).encode()
        request = urllib.request.Request(f"{self.url}/graphql", data=body,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            answer = json.loads(response.read())
        if answer.get("errors"):
            raise GraphQLError(json.dumps(answer["errors"], indent=1)[:3000])
        return dict(answer["data"])

    def alive(self) -> None:
        """Fail with the log of a server that exited."""
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise AssertionError(f"{name} exited ({proc.returncode}):\n{self.tail(name)}")

    def tail(self, name: str, chars: int = 4000) -> str:
        return self.logs[name].read_text(errors="replace")[-chars:]


def _wait_for_webserver(servers: DagsterServers, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        servers.alive()
        try:
            with urllib.request.urlopen(f"{servers.url}/server_info", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise AssertionError(f"dagster-webserver did not answer in {seconds:.0f}s:\n"
                         f"{servers.tail('webserver')}")


WORKSPACE = """
{ workspaceOrError { ... on Workspace { locationEntries {
    name loadStatus
    locationOrLoadError { __typename ... on PythonError { message } }
} } } }"""


def _wait_for_code_location(servers: DagsterServers, seconds: float) -> None:
    """Until the webserver has loaded every code location (it answers HTTP before that)."""
    deadline = time.monotonic() + seconds
    entries: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        servers.alive()
        entries = servers.graphql(WORKSPACE)["workspaceOrError"]["locationEntries"]
        errors = [e["locationOrLoadError"] for e in entries
                  if (e["locationOrLoadError"] or {}).get("__typename") == "PythonError"]
        if errors:
            raise AssertionError(f"the code location failed to load: {errors[0]['message']}")
        if entries and all(e["loadStatus"] == "LOADED" for e in entries):
            return
        time.sleep(0.3)
    raise AssertionError(f"code location not loaded in {seconds:.0f}s: {entries}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the process group this helper started (the server and what it spawned: code
    server, run workers), then SIGKILL if it lingers."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        pass


@contextmanager
def dagster_servers(root: Path, env: Mapping[str, str],
                    instance: Mapping[str, Any]) -> Iterator[DagsterServers]:
    """Start the webserver and the daemon on ``workspace.yaml`` with DAGSTER_HOME=root/dagster
    holding ``instance`` as its dagster.yaml; ``env`` is added to this process's environment
    (data dir, source...). Yields once the webserver answers; stops both on exit."""
    home = root / "dagster"
    home.mkdir(parents=True, exist_ok=True)
    config = {"telemetry": {"enabled": False}, "nux": {"enabled": False}, **instance}
    (home / "dagster.yaml").write_text(yaml.safe_dump(dict(config)))
    # Create the instance's SQLite storage here, once: the two servers would otherwise both
    # create the schema at start and one of them fail (alembic "table ... already exists").
    dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))).dispose()
    full_env = {**os.environ, **env, "DAGSTER_HOME": str(home)}
    port = free_port()
    bin_dir = Path(sys.executable).parent
    commands = {
        "webserver": [str(bin_dir / "dagster-webserver"), "-w", "workspace.yaml",
                      "-h", "127.0.0.1", "-p", str(port)],
        "daemon": [sys.executable, "-c", _DAEMON, "run", "-w", "workspace.yaml"],
    }
    logs = {name: root / f"{name}.log" for name in commands}
    procs: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for name, command in commands.items():
            with logs[name].open("wb") as out:
                procs[name] = subprocess.Popen(command, cwd=REPO, env=full_env, stdout=out,
                                               stderr=subprocess.STDOUT, start_new_session=True)
        servers = DagsterServers(f"http://127.0.0.1:{port}", home, logs, procs)
        _wait_for_webserver(servers, seconds=120)
        _wait_for_code_location(servers, seconds=120)
        yield servers
    finally:
        for proc in procs.values():
            _stop(proc)
