"""cost_baselines split by series across Dagster's executor, when SENTINEL_SHARDS asks for it.

The same asset (key, partitions, single-run backfill policy, checks, description) backed by a
graph instead of one op: ``shard_0`` .. ``shard_{N-1}`` each compute the baselines of the series
whose key hashes to them (detection/shards.py) from the same raw history, and ``merge`` joins
their rows in the unsharded order and writes the day files, metadata and check results as the
plain asset does. The shards are independent steps, so the executor the run uses runs them side
by side: the multiprocess executor on one machine, or dagster-k8s' ``k8s_job_executor`` / the
ECS executor of dagster-aws, a pod or task per step (README, Running in production). Their
frames pass to ``merge`` through the run's IO manager (pickles under the instance's storage by
default; an S3 one when the steps run on different machines). A fixed fan-out, not dynamic
outputs: the UI draws the same graph every run, and shards beyond what a run needs
(SENTINEL_SHARD_SERIES) return at once with no rows.
"""

import time

import dagster as dg

from sentinel_pipeline import settings
from sentinel_pipeline.defs.assets.baselines import (
    BASELINES_ASSET,
    BaselineShard,
    compute_shard,
    cost_baselines,
    publish_baselines,
)
from sentinel_pipeline.defs.resources import DetectionResource, StorageResource


def _shard_op(shard: int, shards: int) -> dg.OpDefinition:
    @dg.op(name=f"shard_{shard}", ins={"raw_daily_costs": dg.In(dg.Nothing)},
           description=f"Baselines of the series in shard {shard} of at most {shards}.")
    def compute(context: dg.AssetExecutionContext, storage: StorageResource,
                detection: DetectionResource) -> BaselineShard:
        started = time.process_time()
        part = compute_shard(context, storage, detection, shard, shards)
        rows = sum(len(frame) for frame in part.frames.values())
        # The step's own CPU, to size shards: the executor's process start-up is not in it.
        context.log.info(f"cost_baselines shard {shard}: {rows:,} series-days in "
                         f"{time.process_time() - started:.1f} s CPU")
        return part

    return compute


def _check_out(spec: dg.AssetCheckSpec) -> str:
    """The output name graph_asset gives a check of the asset."""
    return f"{spec.asset_key.to_python_identifier()}_{spec.name}"


_CHECK_OUTS = [_check_out(spec) for spec in BASELINES_ASSET["check_specs"]]


@dg.op(out={"result": dg.Out(dg.Nothing),
            **{name: dg.Out(dg.Nothing, is_required=False) for name in _CHECK_OUTS}},
       description="Joins the shards' rows in the unsharded order and writes the day files.")
def merge(context: dg.AssetExecutionContext, storage: StorageResource,
          detection: DetectionResource, parts: list[BaselineShard]) -> dg.MaterializeResult:
    return publish_baselines(context, storage, detection, parts)


def sharded_cost_baselines(shards: int) -> dg.AssetsDefinition:
    """cost_baselines as a graph of ``shards`` shard steps and a merge step."""
    ops = [_shard_op(i, shards) for i in range(shards)]

    @dg.graph_asset(name="cost_baselines",
                    ins={"raw_daily_costs": dg.AssetIn(dagster_type=dg.Nothing)},
                    **BASELINES_ASSET)
    def _graph(raw_daily_costs: None) -> dict[str, object]:
        merged = merge([op(raw_daily_costs) for op in ops])
        return {"result": merged.result, **{name: getattr(merged, name) for name in _CHECK_OUTS}}

    return _graph


def baselines_asset(shards: int | None = None) -> dg.AssetsDefinition:
    """The cost_baselines the definitions use: the plain asset, or the sharded graph when
    SENTINEL_SHARDS (read when the code location loads: it is the graph's shape) is 2 or more."""
    count = settings.shards() if shards is None else shards
    return cost_baselines if count < 2 else sharded_cost_baselines(count)
