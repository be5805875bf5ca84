"""Settings, resources from the environment, and the source registry."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import ClassVar

import dagster as dg
import pandas as pd
import pytest

from sentinel_pipeline import settings
from sentinel_pipeline.defs.resources import (
    CostSourceResource,
    DetectionResource,
    resolved,
    resources_from_environment,
)
from sentinel_pipeline.detection import DetectionConfig
from sentinel_pipeline.errors import ConfigError
from sentinel_pipeline.sources import registry
from sentinel_pipeline.sources.base import (
    Check,
    CostSource,
    RootCauses,
    SourceOptions,
    SourceResult,
)
from sentinel_pipeline.sources.demo import DemoSource


def _clear(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in settings.VARIABLES:
        monkeypatch.delenv(name, raising=False)


def test_unset_variables_get_their_defaults_without_touching_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A fresh shell sets nothing: every resource falls back to settings.py, no EnvVar is bound
    (an EnvVar of an absent variable would fail the run), and os.environ stays as it was."""
    _clear(monkeypatch)
    before = dict(os.environ)
    resources = {name: resolved(r) for name, r in resources_from_environment().items()}
    assert dict(os.environ) == before
    source = resources["source"]
    assert (source.source, source.source_path, source.cur_cost, source.ce_metric,
            source.restate_days) == ("demo", "", "unblended", "UnblendedCost", 14)
    assert resources["storage"].data_dir == "./.sentinel/data"
    assert resources["annotator"].api_key is None
    assert resources["annotator"].model == "claude-haiku-4-5"
    assert resources["alert_sink"].slack_bot_token is None
    assert resources["alert_sink"].channel == "#cost-alerts"
    assert isinstance(source.cost_source(), DemoSource)


def test_set_variables_are_bound_as_env_vars_and_read_at_run_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _clear(monkeypatch)
    monkeypatch.setenv("SENTINEL_SOURCE", "cur")
    monkeypatch.setenv("SENTINEL_RESTATE_DAYS", "3")
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-secret-value")
    monkeypatch.setenv("SLACK_CHANNEL", "  ")  # blank: the default, not an empty channel
    resources = resources_from_environment()
    # The definitions hold the variable's name, never its value (what the UI shows).
    assert "xoxb-secret-value" not in repr(resources["alert_sink"])
    monkeypatch.setenv("SENTINEL_SOURCE", "focus")  # changed after load: the run sees it
    source = resolved(resources["source"])
    assert (source.source, source.restate_days) == ("focus", 3)
    sink = resolved(resources["alert_sink"])
    assert (sink.slack_bot_token, sink.channel) == ("xoxb-secret-value", "#cost-alerts")


def test_a_bad_start_date_names_the_variable_and_the_form() -> None:
    for bad in ("2025-13-01", "20250101", "2025-W01-1"):
        with pytest.raises(ConfigError, match=rf"SENTINEL_START_DATE='{bad}'.*YYYY-MM-DD"):
            settings.start_date({"SENTINEL_START_DATE": bad})
    assert settings.start_date({}) == date(2025, 1, 1)


def test_detection_defaults_have_one_home() -> None:
    """The resource, the config and the CLI's method list all come from settings.py."""
    config = DetectionResource().config()
    assert config == DetectionConfig()
    assert (config.method, config.min_impact, config.lookback_days) == (
        settings.METHOD, settings.MIN_IMPACT, settings.LOOKBACK_DAYS)
    with pytest.raises(ConfigError, match="Unknown detection method 'zscore'"):
        DetectionResource(method="zscore").config()


def test_unknown_source_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError, match="demo, focus, cost_explorer, cur"):
        CostSourceResource(source="gcp_billing").cost_source()


@dataclass(frozen=True)
class _FlatSource(CostSource):
    """A source written the way a new one would be: one class, its own settings."""

    name: ClassVar[str] = "flat"
    path: str

    @classmethod
    def from_options(cls, options: SourceOptions) -> _FlatSource:
        return cls(path=options.path)

    def fetch(self, start: date, end: date) -> SourceResult:
        days = pd.date_range(start, end).date
        rows = pd.DataFrame({"usage_date": days, "service": "Flat", "account_id": "1",
                             "region": "global", "owner": "", "cost": 5.0, "currency": "USD",
                             "estimated": False, "source": self.name})
        return SourceResult(rows, {"flat_path": self.path}, requests=1)

    def check(self, today: date) -> Check:
        return True, f"flat source at {self.path}"


def test_a_new_source_is_one_class_and_one_registry_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
    instance: dg.DagsterInstance,
) -> None:
    """Registered under its name, the class feeds raw_daily_costs through the real job, its
    metadata lands on the materialisation, and its default root causes are empty."""
    monkeypatch.setitem(registry.SOURCES, "flat", _FlatSource)
    monkeypatch.setenv("SENTINEL_SOURCE", "flat")
    monkeypatch.setenv("SENTINEL_SOURCE_PATH", "/somewhere")
    monkeypatch.setenv("SENTINEL_DATA_DIR", str(tmp_path))
    from sentinel_pipeline_tests.conftest import run_days

    day = date(2025, 2, 1)
    result = run_days(instance, day, day, raise_on_error=False)
    raw = [e for e in result.get_asset_materialization_events()
           if e.asset_key.to_user_string() == "raw_daily_costs"]
    metadata = raw[0].materialization.metadata
    assert metadata["flat_path"].value == "/somewhere"
    assert metadata["source_requests"].value == 1
    assert metadata["total_cost"].value == 5.0
    assert _FlatSource("x").root_causes(pd.DataFrame({"a": [1, 2]})) == RootCauses(["", ""])
