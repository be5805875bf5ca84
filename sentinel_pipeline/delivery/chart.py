"""A small PNG of an alert's series: the last 30 days, the expected cost, the anomaly marked.

A picture of "normal, normal, normal, spike" is what makes an alert believable at a glance.
``render_series_chart`` is pure (frames in, PNG bytes out) and uses matplotlib's Agg canvas on
its own Figure, so it needs no display and touches no global pyplot state (sensors may run in
threads). ``series_history`` reads the frames it draws from the tables.
"""

from __future__ import annotations

import io
from datetime import date, timedelta

import pandas as pd

from sentinel_pipeline.delivery.message import MAX_FIELD_CHARS, escape
from sentinel_pipeline.schema import same_series
from sentinel_pipeline.storage import TableStore

CHART_DAYS = 30
WIDTH_PX, HEIGHT_PX, DPI = 800, 300, 100


def series_history(store: TableStore, alert: pd.Series,
                   days: int = CHART_DAYS) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Daily cost and expected cost of the alert's series over the ``days`` ending on its day."""
    day = pd.Timestamp(alert["usage_date"]).date()
    start = day - timedelta(days=days - 1)

    def one_series(table: str, value: str) -> pd.DataFrame:
        frame = store.read_range(table, start, day)
        if len(frame) == 0 or value not in frame.columns:
            return pd.DataFrame({"usage_date": [], value: []})
        picked = frame.loc[same_series(frame, alert), ["usage_date", value]].copy()
        picked["usage_date"] = pd.to_datetime(picked["usage_date"]).dt.date
        return picked.groupby("usage_date", as_index=False)[[value]].sum()

    return one_series("raw_daily_costs", "cost"), one_series("cost_baselines", "expected_cost")


def render_series_chart(costs: pd.DataFrame, expected: pd.DataFrame, day: date,
                        title: str) -> bytes:
    """PNG bytes (800x300): actual cost per day, the expected cost dashed, ``day`` marked."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.dates import date2num
    from matplotlib.figure import Figure

    fig = Figure(figsize=(WIDTH_PX / DPI, HEIGHT_PX / DPI), dpi=DPI)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    actual = costs.sort_values("usage_date")
    x = pd.to_datetime(actual["usage_date"])
    ax.plot(x, actual["cost"], color="#1f6feb", linewidth=1.8, marker="o", markersize=2.5,
            label="actual")
    if len(expected):
        exp = expected.sort_values("usage_date")
        ax.plot(pd.to_datetime(exp["usage_date"]), exp["expected_cost"], color="#8b949e",
                linestyle="--", linewidth=1.2, label="expected")
    on_day = actual[actual["usage_date"] == day]
    if len(on_day):
        ax.scatter(pd.to_datetime(on_day["usage_date"]), on_day["cost"], s=70, color="#d73a49",
                   zorder=5, label=f"anomaly {day.isoformat()}")
    ax.axvline(date2num(day), color="#d73a49", alpha=0.25, linewidth=6)
    ax.set_title(title if len(title) <= 90 else title[:89] + "…", fontsize=10, loc="left")
    ax.yaxis.set_major_formatter(lambda v, _pos: f"${v:,.0f}")
    ax.tick_params(labelsize=8)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", frameon=False)
    fig.autofmt_xdate()
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def alert_chart(store: TableStore, alert: pd.Series) -> bytes:
    """The chart of one alert, read from the tables."""
    costs, expected = series_history(store, alert)
    day = pd.Timestamp(alert["usage_date"]).date()
    title = f"{alert['service']} · {alert['account_id']} · {alert['region']}"
    return render_series_chart(costs, expected, day, title)


def upload_title(alert: pd.Series, day: str) -> str:
    """The chart's title in Slack, escaped as the message is: billing names cannot mention
    (``<!channel>``, ``<@U123>``) or link there. The title drawn in the PNG stays raw: a
    picture cannot mention anyone."""
    return (f"{escape(alert['service'], MAX_FIELD_CHARS)} ({escape(alert['account_id'], 64)}, "
            f"{escape(alert['region'], 64)}), {day}")
