"""The check on annotated_alerts: every alert explains itself and names an action.

It warns rather than blocks: an alert with a poor explanation is still worth sending, but the
UI shows which annotator (Claude or the fallback) wrote something unusable.
"""

from collections.abc import Mapping
from datetime import date

import dagster as dg
import pandas as pd

from sentinel_pipeline.annotation.prompt import ACTIONS
from sentinel_pipeline.quality_checks import alerts_explained

ALERTS_EXPLAINED_CHECK = dg.AssetCheckSpec(
    "explained", asset="annotated_alerts",
    description="Every alert has a non-empty explanation and an action among "
    f"{', '.join(ACTIONS)} (warns: the Slack message would say nothing useful).",
)


def alerts_explained_result(frames: Mapping[date, pd.DataFrame]) -> dg.AssetCheckResult:
    """The `explained` check on the alerts the asset is about to write."""
    passed, details = alerts_explained(frames, ACTIONS)
    return dg.AssetCheckResult(check_name="explained", passed=passed, metadata=details,
                               severity=dg.AssetCheckSeverity.WARN)
