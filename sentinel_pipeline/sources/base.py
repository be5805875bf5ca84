"""The one interface every cost source implements, and what it hands back.

A source turns one kind of billing data into raw_daily_costs rows (``fetch``), says where the
money of an alert went (``root_causes``), and tells ``sentinel doctor`` whether it can work
(``check``). Side results travel in the returned objects, never on the frame: metadata for the
asset's UI page and the billed API requests made.

Adding a source: one module with a ``CostSource`` subclass, and one line in ``registry.py``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import date
from typing import Any, ClassVar

import pandas as pd

from sentinel_pipeline import settings

Check = tuple[bool, str]  # (passed, one line saying what was found and, if broken, the fix)


@dataclass(frozen=True)
class SourceOptions:
    """Everything a source may be configured with; each source takes the fields it needs.

    Defaults are settings.py's; the source resource fills these from the environment."""

    path: str = ""
    focus_cost: str = settings.default("SENTINEL_FOCUS_COST")
    cur_cost: str = settings.default("SENTINEL_CUR_COST")
    cur_line_item_types: str = settings.default("SENTINEL_CUR_LINE_ITEM_TYPES")
    ce_metric: str = settings.default("SENTINEL_CE_METRIC")
    ce_record_types: str = settings.default("SENTINEL_CE_RECORD_TYPES")
    demo_series: int = settings.DEMO_SERIES
    owner_key: str = settings.default("SENTINEL_OWNER_KEY")  # settings.parse_owner_key syntax
    athena_database: str = settings.default("SENTINEL_ATHENA_DATABASE")
    athena_table: str = settings.default("SENTINEL_ATHENA_TABLE")
    athena_workgroup: str = settings.default("SENTINEL_ATHENA_WORKGROUP")
    athena_output: str = settings.default("SENTINEL_ATHENA_OUTPUT")
    athena_timeout: float = settings.ATHENA_TIMEOUT_SECONDS

    @property
    def owner(self) -> settings.OwnerKey | None:
        """The parsed owner key (None: series have no owner); a bad one is a ConfigError."""
        return settings.parse_owner_key(self.owner_key)


@dataclass
class SourceResult:
    """What a fetch returns: the rows, what the UI should show about them, billed requests."""

    rows: pd.DataFrame
    metadata: dict[str, Any] = field(default_factory=dict)
    requests: int = 0


@dataclass
class RootCauses:
    """The JSON root causes of each alert row, in order ('' where unknown), and the billed
    requests it took to find them."""

    causes: list[str]
    requests: int = 0

    @classmethod
    def none(cls, rows: int) -> RootCauses:
        return cls(["" for _ in range(rows)])


class CostSource(ABC):
    """One kind of billing data. Implementations are small frozen dataclasses holding their
    own typed settings, built from ``SourceOptions`` by ``from_options``."""

    name: ClassVar[str]

    @classmethod
    @abstractmethod
    def from_options(cls, options: SourceOptions) -> CostSource:
        """This source with its settings taken from the options (validated by fetch/check)."""

    @abstractmethod
    def fetch(self, start: date, end: date) -> SourceResult:
        """raw_daily_costs rows (schema.RAW_COLUMNS) for the days start..end inclusive.

        Raises SourceError / ConfigError, having returned nothing, on any bad input."""

    def root_causes(self, alerts: pd.DataFrame) -> RootCauses:
        """Where each alert's money went (schema: sources/root_causes.py). Sources that cannot
        look below the series leave it empty."""
        return RootCauses.none(len(alerts))

    @abstractmethod
    def check(self, today: date) -> Check:
        """For ``sentinel doctor``: are the settings valid and is the data reachable."""
