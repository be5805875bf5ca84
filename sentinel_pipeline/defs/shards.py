"""cost_baselines split by series across Dagster's executor, when SENTINEL_SHARDS asks for it.

The same asset (key, partitions, single-run backfill policy, checks, description) backed by a
graph instead of one op: ``shard_0`` .. ``shard_{N-1}`` each compute the baselines of the series
whose key hashes to them (detection/shards.py) from the same raw history, and ``merge`` joins
their rows in the unsharded order and writes the day files, metadata and check results as the
plain asset does. The shards are independent steps, so the executor the run uses runs them side
by side: the multiprocess executor on one machine, or dagster-k8s' ``k8s_job_executor`` / the
ECS executor of dagster-aws, a pod or task per step (README, Running in production). Their
frames pass to ``merge`` through ``ShardIOManager`` (the data dir, so pods on other machines see
them). A fixed fan-out, not dynamic outputs: the UI draws the same graph every run, and shards
beyond what a run needs (SENTINEL_SHARD_SERIES) return at once with no rows.
"""

import pickle
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

SHARD_IO_MANAGER = "shard_io_manager"


class ShardIOManager(dg.ConfigurableIOManager):
    """Hands each shard step's baselines to the merge step through the data dir (a folder or
    S3, which every step process, pod or task sees), in one file per shard step that the next
    run overwrites. Dagster's default IO manager keeps every run's outputs under the instance's
    storage folder for ever (at a million series, 0.2 GB a shard and day) and is local to one
    machine. The file carries the run id that wrote it: a merge that finds another run's shard
    (two sharded runs at once, which the run queue's tag limit prevents) fails, not mixes."""

    storage: StorageResource

    def handle_output(self, context: dg.OutputContext, obj: BaselineShard) -> None:
        payload = pickle.dumps((context.run_id, obj), protocol=pickle.HIGHEST_PROTOCOL)
        self.storage.store().write_bytes(_shard_file(context.step_key), payload)

    def load_input(self, context: dg.InputContext) -> BaselineShard:
        upstream = context.upstream_output
        if upstream is None:  # only merge loads from here, always from a shard step
            raise dg.Failure("cost_baselines merge: no shard step to load from")
        rel = _shard_file(upstream.step_key)
        data = self.storage.store().read_bytes(rel)
        run_id, part = pickle.loads(data) if data else (None, None)  # our own file
        if run_id != upstream.run_id or not isinstance(part, BaselineShard):
            raise dg.Failure(
                description=(f"cost_baselines: the output of {upstream.step_key} (run "
                             f"{upstream.run_id}) is not in {self.storage.store().display(rel)}"
                             f"{f' (run {run_id} overwrote it)' if run_id else ''}: rerun "
                             "cost_baselines for these days, one sharded run at a time."),
                allow_retries=False)
        return part


def _shard_file(step_key: str) -> str:
    return f"_shards/{step_key}.pickle"


def _shard_op(shard: int, shards: int) -> dg.OpDefinition:
    @dg.op(name=f"shard_{shard}", ins={"raw_daily_costs": dg.In(dg.Nothing)},
           out=dg.Out(io_manager_key=SHARD_IO_MANAGER),
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
