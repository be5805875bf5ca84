"""Which Slack channel each alert goes to: an optional YAML routes file, first match wins.

Teams own accounts and services; routing their alerts to their own channel keeps the shared
channel readable. The file is named by ``SENTINEL_SLACK_ROUTES``::

    routes:
      - match: {account_id: "111122223333"}
        channel: "#team-a"
      - match: {service: "Amazon SageMaker", region: "us-east-1"}
        channel: "#ml"
      - match: {owner: "team-a"}         # SENTINEL_OWNER_KEY=tag:team
        channel: "#team-a-costs"

A route matches when every field in its ``match`` equals the alert's value (as text); alerts no
route matches go to the default channel (``SLACK_CHANNEL``). ``owner`` is the value of the tag or
cost category named by SENTINEL_OWNER_KEY; untagged spend has owner "", so it never matches an
owner route (and goes to the default channel) unless a route asks for ``owner: ""``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from sentinel_pipeline.errors import ConfigError

MATCH_FIELDS: tuple[str, ...] = ("service", "account_id", "region", "owner")
ROUTE_KEYS: frozenset[str] = frozenset({"match", "channel"})


@dataclass(frozen=True)
class Route:
    match: Mapping[str, str]
    channel: str

    def matches(self, alert: Mapping[str, Any]) -> bool:
        return all(_text(alert.get(k)) == v for k, v in self.match.items())


def _text(value: Any) -> str:
    """An alert's field as text; missing (an alert of before owners) is "", never "nan"."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return ""
    return str(value)


@dataclass(frozen=True)
class Router:
    """Routes in file order plus the default channel."""

    default_channel: str
    routes: tuple[Route, ...] = ()

    def channel_for(self, alert: Mapping[str, Any]) -> str:
        for route in self.routes:
            if route.matches(alert):
                return route.channel
        return self.default_channel

    def channels(self, alerts: pd.DataFrame) -> pd.Series:
        """The channel of each row of a frame, aligned with its index."""
        return pd.Series([self.channel_for(row) for row in alerts.to_dict("records", into=dict)],
                         index=alerts.index, dtype=object)


def _fail(path: str, problem: str) -> ConfigError:
    return ConfigError(
        f"SENTINEL_SLACK_ROUTES file {path}: {problem}. Expected 'routes:' followed by items "
        "like '- {match: {account_id: \"1111\"}, channel: \"#team-a\"}' (match fields: "
        f"{', '.join(MATCH_FIELDS)}), or unset SENTINEL_SLACK_ROUTES to send everything to "
        "SLACK_CHANNEL."
    )


def parse_routes(document: Any, path: str) -> tuple[Route, ...]:
    """Validate a parsed YAML document; every problem names the route and the fix."""
    if document is None:
        return ()
    if not isinstance(document, dict) or set(document) - {"routes"}:
        extra = sorted(set(document) - {"routes"}) if isinstance(document, dict) else None
        raise _fail(path, f"unknown top-level key(s) {extra}" if extra
                    else "the file must be a mapping with a 'routes' list")
    items = document.get("routes") or []
    if not isinstance(items, list):
        raise _fail(path, "'routes' must be a list")
    routes = []
    for i, item in enumerate(items, start=1):
        if not isinstance(item, dict):
            raise _fail(path, f"route {i} is not a mapping")
        unknown = sorted(set(item) - ROUTE_KEYS)
        if unknown:
            raise _fail(path, f"route {i} has unknown key(s) {unknown} (allowed: match, channel)")
        channel, match = item.get("channel"), item.get("match")
        if not isinstance(channel, str) or not channel.strip():
            raise _fail(path, f"route {i} needs a 'channel' (e.g. \"#team-a\" or a channel ID)")
        if not isinstance(match, dict) or not match:
            raise _fail(path, f"route {i} needs a non-empty 'match' mapping")
        bad = sorted(str(k) for k in match if k not in MATCH_FIELDS)
        if bad:
            raise _fail(path, f"route {i} matches on unknown field(s) {bad}")
        if any(isinstance(v, dict | list) or v is None for v in match.values()):
            raise _fail(path, f"route {i}: match values must be single values (text or number; "
                        "write owner: \"\" for untagged spend)")
        routes.append(Route({str(k): str(v) for k, v in match.items()}, channel.strip()))
    return tuple(routes)


def load_router(routes_file: str, default_channel: str) -> Router:
    """The router for a routes file ('' = no routing: everything to the default channel)."""
    if not routes_file:
        return Router(default_channel)
    import yaml

    path = Path(routes_file)
    if not path.is_file():
        raise _fail(routes_file, "file not found")
    try:
        document = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise _fail(routes_file, f"not valid YAML{where}") from exc
    except OSError as exc:
        raise _fail(routes_file, f"cannot be read ({exc.strerror or exc})") from exc
    return Router(default_channel, parse_routes(document, routes_file))
