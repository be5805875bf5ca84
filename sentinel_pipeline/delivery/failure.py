"""The Slack message for a failed pipeline run: which job, which step, the error, the run link.

A failed daily run means no alerts that day; saying so in the alert channel is what keeps
"no news" from being mistaken for "no anomalies".
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sentinel_pipeline.delivery.message import MAX_SECTION_CHARS, clip, escape, redact

MAX_STEPS_SHOWN = 5


def first_line(text: str | None) -> str:
    for line in (text or "").splitlines():
        if line.strip():
            return line.strip()
    return ""


def run_link(dagster_url: str, run_id: str) -> str | None:
    return f"{dagster_url.rstrip('/')}/runs/{run_id}" if dagster_url else None


def build_failure_message(
    job_name: str,
    run_id: str,
    step_errors: Sequence[tuple[str, str]],
    run_error: str = "",
    dagster_url: str = "",
    partition: str | None = None,
) -> dict[str, Any]:
    """``step_errors``: (step key, error text) of each failed step; only first lines are shown,
    escaped and with anything token-shaped redacted."""
    what = f"{job_name}" + (f" ({partition})" if partition else "")
    title = clip(f"Sentinel run failed: {what}", 150)
    lines = [f"*Job:* {escape(job_name, 200)}", f"*Run:* `{escape(run_id, 64)}`"]
    if partition:
        lines.append(f"*Partition:* {escape(partition, 100)}")
    for step, error in list(step_errors)[:MAX_STEPS_SHOWN]:
        lines.append(f"*Step {escape(step, 200)} failed:* {escape(redact(first_line(error)), 500)}")
    if len(step_errors) > MAX_STEPS_SHOWN:
        lines.append(f"… and {len(step_errors) - MAX_STEPS_SHOWN} more failed step(s).")
    if not step_errors and run_error:
        lines.append(f"*Error:* {escape(redact(first_line(run_error)), 500)}")
    link = run_link(dagster_url, run_id)
    lines.append(f"<{link}|Open the run in Dagster>" if link
                 else "Set SENTINEL_DAGSTER_URL to get a link to the run.")
    return {
        "text": escape(title),
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": title}},
            {"type": "section", "text": {"type": "mrkdwn",
                                         "text": clip("\n".join(lines), MAX_SECTION_CHARS)}},
        ],
    }
