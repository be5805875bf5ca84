"""The alert text (issue 15.6): where the money went is said once, only material lines are
named, and a line's growth is told against its own 14-day average, the same way in Slack, in the
fallback explanation and in what Claude is told."""

from __future__ import annotations

from datetime import date

import pandas as pd

from sentinel_pipeline.annotation.fallback import explain_row
from sentinel_pipeline.annotation.prompt import SYSTEM_PROMPT
from sentinel_pipeline.delivery.message import build_message
from sentinel_pipeline.schema import ALERT_COLUMNS
from sentinel_pipeline.sources.root_causes import from_json, to_json

DAY = date(2025, 3, 1)
BASIS = "(growth over each line's 14-day average)"

# The ELB alert of the issue: one line grew $543.55 over its 14-day average while the series'
# impact (actual - the detector's expected) is $536: the bases differ, so the line is "larger".
ELB = [{"region": "us-east-1", "usage_type": "USE1-Requests", "actual": 600.0,
        "baseline": 56.45, "increase": 543.55, "share": 1.0}]
# The same day with the other lines that grew (shares of their $585.41 growth in all).
ELB_LINES = [
    {**ELB[0], "share": 0.929},
    {"region": "us-east-1", "usage_type": "USE1-LCUUsage", "actual": 60.0, "baseline": 20.0,
     "increase": 40.0, "share": 0.068},                                       # 6.8 %: named
    {"region": "us-east-1", "usage_type": "USE1-DataProcessing-Bytes", "actual": 3.0,
     "baseline": 1.14, "increase": 1.86, "share": 0.003},                     # "(0 %)": noise
]


def _row(causes: list[dict[str, object]], annotation: dict[str, object] | None = None,
         **overrides: object) -> pd.Series:
    """An anomaly as the fallback annotator writes it (its explanation names the causes), or
    with ``annotation`` as another annotator wrote it."""
    row: dict[str, object] = {c: None for c in ALERT_COLUMNS}
    row.update({
        "usage_date": DAY, "service": "Elastic Load Balancing", "account_id": "111122223333",
        "region": "us-east-1", "actual_cost": 600.0, "expected_cost": 64.0, "impact": 536.0,
        "pct_change": 837.5, "score": 12.0, "kind": "spike", "method": "robust",
        "currency": "USD", "anomaly_start": DAY, "alert": True, "root_causes": to_json(causes),
    })
    row.update(overrides)
    series = pd.Series(row)
    for name, value in (annotation or explain_row(series)).items():
        series[name] = value
    return series


def _section(*rows: pd.Series) -> list[str]:
    """The alert section of each row's own message."""
    messages = [build_message(DAY.isoformat(), row) for row in rows]
    return [m["blocks"][1]["text"]["text"] for m in messages]


def test_where_the_money_went_is_shown_once_whoever_wrote_the_explanation() -> None:
    causes = ELB_LINES[:2]
    fallback = _row(causes)
    # The stored fallback explanation stands on its own (the CLI prints it): it names the lines.
    assert "Where the money went" in str(fallback["explanation"])
    claude = _row(causes, {"explanation": "Claude says the load balancer served far more "
                                          "requests.", "annotator": "claude-haiku-4-5"},
                  service="Amazon EC2", impact=535.0)
    for text in _section(fallback, claude):
        assert text.count("Where the money went") == 1, text
        assert text.count("+$543.55") == 1 and text.count("+$40.00") == 1, text
    fallback_text = _section(fallback)[0]
    # What the explanation said besides the lines is kept: the facts, then the advice.
    assert "$536.00 more than the expected $64.00" in fallback_text
    assert "Find and stop what is running unexpectedly." in fallback_text


def test_immaterial_lines_are_named_nowhere_but_stay_in_the_stored_json() -> None:
    row = _row(ELB_LINES)
    (text,) = _section(row)
    assert ("USE1-Requests +$543.55 (93 % of the growth); us-east-1 USE1-LCUUsage +$40.00 "
            "(7 % of the growth)\n") in text
    for rendered in (text, str(row["explanation"]), str(row["likely_cause"])):
        assert "DataProcessing" not in rendered and "1.86" not in rendered, rendered
        assert "(0 %" not in rendered and "(0%)" not in rendered, rendered
    assert len(from_json(row["root_causes"])) == 3  # the contract keeps what the source ranked


def test_a_line_larger_than_the_impact_is_told_against_its_14_day_average() -> None:
    row = _row(ELB)
    (text,) = _section(row)
    line = "us-east-1 USE1-Requests +$543.55 (100 % of the growth)"
    assert "impact $536.00" in text
    assert f"*Where the money went* {BASIS}: {line}" in text
    assert f"Where the money went {BASIS}: {line}." in str(row["explanation"])
    assert "+$543.55 (100%)" not in text + str(row["explanation"])  # the unqualified old form
    assert "over their 14-day average: us-east-1 USE1-Requests +$543.55" in str(
        row["likely_cause"])
    # Claude is told the same basis, so it does not set the line against the impact either.
    assert "not against expected_cost" in SYSTEM_PROMPT and "14-day average" in SYSTEM_PROMPT


def test_a_drop_names_no_line_and_a_new_line_says_so() -> None:
    new_line = [{"region": "us-west-2", "usage_type": "BoxUsage:p4d.24xlarge", "actual": 812.4,
                 "baseline": 0.0, "increase": 812.4, "share": 1.0}]
    drop = _row(new_line, kind="drop", actual_cost=40.0, expected_cost=100.0, impact=-60.0,
                pct_change=-60.0)
    assert "Where the money went" not in _section(drop)[0]
    spike = _row(new_line, actual_cost=900.0, expected_cost=87.6, impact=812.4)
    assert "+$812.40 (new; 100 % of the growth)" in _section(spike)[0]
