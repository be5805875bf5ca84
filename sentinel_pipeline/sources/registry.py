"""Which cost source runs: the one map from SENTINEL_SOURCE names to source classes."""

from __future__ import annotations

from sentinel_pipeline.errors import ConfigError
from sentinel_pipeline.sources.athena import AthenaSource
from sentinel_pipeline.sources.base import CostSource, SourceOptions
from sentinel_pipeline.sources.cost_explorer import CostExplorerSource
from sentinel_pipeline.sources.cur import CurSource
from sentinel_pipeline.sources.demo import DemoSource
from sentinel_pipeline.sources.focus import FocusSource

SOURCES: dict[str, type[CostSource]] = {
    DemoSource.name: DemoSource,
    FocusSource.name: FocusSource,
    CostExplorerSource.name: CostExplorerSource,
    CurSource.name: CurSource,
    AthenaSource.name: AthenaSource,
}


def make_source(name: str, options: SourceOptions) -> CostSource:
    """The configured source; an unknown name is a ConfigError listing the known ones, a bad
    SENTINEL_OWNER_KEY one naming the syntax (before any data is read)."""
    _ = options.owner  # parsing validates it
    try:
        source = SOURCES[name.strip()]
    except KeyError:
        raise ConfigError(
            f"Unknown SENTINEL_SOURCE={name!r}: choose one of {', '.join(SOURCES)}."
        ) from None
    return source.from_options(options)
