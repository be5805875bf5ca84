"""Parquet tables, one file per daily partition, in a local folder or under an s3:// prefix.

Layout: ``{root}/{table}/date=YYYY-MM-DD/data.parquet`` (Hive style, so DuckDB, Athena, Spark and
pyarrow read a whole table as one dataset). A partition is replaced whole: locally by writing a
temporary file and renaming it, on S3 by a single PUT, so a failed run never leaves half a file.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from sentinel_pipeline.errors import DamagedPartitionError, StorageError
from sentinel_pipeline.schema import arrow_type, with_owner

PARTITION_FILE = "data.parquet"


def _split_s3(url: str) -> tuple[str, str]:
    rest = url[len("s3://") :]
    bucket, _, prefix = rest.partition("/")
    return bucket, prefix.strip("/")


class TableStore:
    """Reads and writes the Sentinel tables under one root (local path or s3:// URL)."""

    def __init__(self, root: str) -> None:
        if not root:
            raise StorageError("SENTINEL_DATA_DIR is empty: set it to a folder or an s3:// URL.")
        self.root = root.rstrip("/") if root.startswith("s3://") else str(Path(root))
        self.is_s3 = self.root.startswith("s3://")
        self._s3: Any = None

    # ----------------------------------------------------------------- paths
    def _key(self, *parts: str) -> str:
        return "/".join([*parts])

    def _client(self) -> Any:
        if self._s3 is None:
            import boto3

            self._s3 = boto3.client("s3")
        return self._s3

    def _s3_key(self, rel: str) -> tuple[str, str]:
        bucket, prefix = _split_s3(self.root)
        return bucket, f"{prefix}/{rel}" if prefix else rel

    # ------------------------------------------------------------ raw bytes
    def write_bytes(self, rel: str, data: bytes) -> str:
        """Atomically replace one object; returns its full path."""
        if self.is_s3:
            bucket, key = self._s3_key(rel)
            try:
                self._client().put_object(Bucket=bucket, Key=key, Body=data)
            except Exception as exc:  # botocore raises many types; all mean "cannot write"
                raise StorageError(
                    f"Cannot write s3://{bucket}/{key}: {type(exc).__name__}: {exc}. Check that "
                    "the bucket exists and the credentials allow s3:PutObject."
                ) from exc
            return f"s3://{bucket}/{key}"
        path = Path(self.root) / rel
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, path)
        except OSError as exc:
            raise StorageError(
                f"Cannot write {path}: {exc.strerror or exc}. Make SENTINEL_DATA_DIR "
                f"({self.root}) a writable folder, or point it elsewhere."
            ) from exc
        return str(path)

    def read_bytes(self, rel: str) -> bytes | None:
        """The object's bytes, or None when it does not exist."""
        if self.is_s3:
            bucket, key = self._s3_key(rel)
            client = self._client()
            try:
                return client.get_object(Bucket=bucket, Key=key)["Body"].read()
            except client.exceptions.NoSuchKey:
                return None
            except Exception as exc:
                raise StorageError(f"Cannot read s3://{bucket}/{key}: {exc}") from exc
        path = Path(self.root) / rel
        if not path.exists():
            return None
        try:
            return path.read_bytes()
        except OSError as exc:
            raise StorageError(f"Cannot read {path}: {exc.strerror or exc}.") from exc

    def list_dir(self, rel: str) -> list[str]:
        """Names directly under a folder of the store (empty when it does not exist)."""
        if self.is_s3:
            bucket, key = self._s3_key(rel)
            names: set[str] = set()
            paginator = self._client().get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=bucket, Prefix=key.rstrip("/") + "/",
                                           Delimiter="/"):
                for cp in page.get("CommonPrefixes", []):
                    names.add(cp["Prefix"].rstrip("/").rsplit("/", 1)[-1])
                for obj in page.get("Contents", []):
                    names.add(obj["Key"].rsplit("/", 1)[-1])
            return sorted(names)
        path = Path(self.root) / rel
        return sorted(p.name for p in path.iterdir()) if path.is_dir() else []

    def write_json(self, rel: str, payload: Any) -> str:
        return self.write_bytes(rel, json.dumps(payload, indent=2, default=str).encode())

    def read_json(self, rel: str) -> Any | None:
        data = self.read_bytes(rel)
        return None if data is None else json.loads(data)

    # --------------------------------------------------------------- tables
    def _partition_key(self, table: str, day: date) -> str:
        return self._key(table, f"date={day.isoformat()}", PARTITION_FILE)

    def write_partition(self, table: str, day: date, df: pd.DataFrame) -> str:
        """Replace one day's file of a table with exactly these rows."""
        arrow = pa.Table.from_pandas(df, preserve_index=False)
        for i, field in enumerate(arrow.schema):
            if pa.types.is_null(field.type) and (wanted := arrow_type(field.name)) is not None:
                arrow = arrow.set_column(i, field.name, arrow.column(i).cast(wanted))
        buf = io.BytesIO()
        pq.write_table(arrow, buf, compression="zstd")
        return self.write_bytes(self._partition_key(table, day), buf.getvalue())

    def read_partition(self, table: str, day: date) -> pd.DataFrame | None:
        """One day's rows, or None when that partition was never written."""
        data = self.read_bytes(self._partition_key(table, day))
        if data is None:
            return None
        with self._damage(table, day):
            return with_owner(pq.read_table(io.BytesIO(data)).to_pandas())

    def write_table(self, table: str, df: pd.DataFrame) -> str:
        """Replace a table that is not partitioned by day ({table}/data.parquet), whole."""
        buf = io.BytesIO()
        pq.write_table(pa.Table.from_pandas(df, preserve_index=False), buf, compression="zstd")
        return self.write_bytes(f"{table}/data.parquet", buf.getvalue())

    def read_table(self, table: str) -> pd.DataFrame | None:
        """A table that is not partitioned by day, or None when it was never written."""
        data = self.read_bytes(f"{table}/data.parquet")
        if data is None:
            return None
        try:
            return pq.read_table(io.BytesIO(data)).to_pandas()
        except (pa.ArrowException, OSError) as exc:
            raise DamagedPartitionError(
                f"{self.display(f'{table}/data.parquet')} is damaged and cannot be read "
                f"({type(exc).__name__}: {exc}): rematerialise the {table} asset to rewrite it."
            ) from exc

    def read_schema(self, table: str, day: date) -> pa.Schema | None:
        """The Parquet schema of one day's file as written, or None when there is no file."""
        data = self.read_bytes(self._partition_key(table, day))
        if data is None:
            return None
        with self._damage(table, day):
            return pq.read_schema(io.BytesIO(data))

    @contextmanager
    def _damage(self, table: str, day: date) -> Iterator[None]:
        """A file that is there but cannot be read (truncated, overwritten) will not heal by
        retrying: name it and the fix."""
        try:
            yield
        except (pa.ArrowException, OSError) as exc:
            where = self.display(self._partition_key(table, day))
            raise DamagedPartitionError(
                f"{where} is damaged and cannot be read ({type(exc).__name__}: {exc}): rerun "
                f"{day} to rewrite it (sentinel backfill --start {day} --end {day}, or "
                f"materialise partition {day} in the Dagster UI)."
            ) from exc

    def display(self, rel: str) -> str:
        """Where an object is, as a user would type it (a path or an s3:// URL)."""
        if self.is_s3:
            bucket, key = self._s3_key(rel)
            return f"s3://{bucket}/{key}"
        return str(Path(self.root) / rel)

    def read_days(self, table: str, days: Iterable[date]) -> pd.DataFrame:
        """Rows of the given days that exist, concatenated (an empty frame if none)."""
        frames = [f for d in days if (f := self.read_partition(table, d)) is not None]
        frames = [f for f in frames if len(f)]
        if not frames:
            return pd.DataFrame()
        return pd.concat(frames, ignore_index=True)

    def read_range(self, table: str, start: date, end: date) -> pd.DataFrame:
        """Rows of the days from start to end inclusive (missing days are skipped)."""
        n = (end - start).days + 1
        return self.read_days(table, (start + timedelta(days=i) for i in range(max(n, 0))))

    def read_arrow(
        self,
        table: str,
        day: date,
        columns: Sequence[str],
        more: Callable[[pa.Table], Sequence[str]] | None = None,
    ) -> pa.Table | None:
        """Only ``columns`` of one day's file, as Arrow (None when there is no file).

        String columns come dictionary-encoded, so a million rows of keys cost integer codes and
        the distinct strings, not a Python string each. A column the file lacks is left out.
        ``more(read)`` may name further columns to read from the same file (read once): e.g.
        the dates first, and the rest only when those dates are wanted.
        """
        source: Any
        if self.is_s3:
            data = self.read_bytes(self._partition_key(table, day))
            if data is None:
                return None
            source = io.BytesIO(data)
        else:
            source = Path(self.root) / self._partition_key(table, day)
            if not source.exists():
                return None
        with self._damage(table, day):
            schema = pq.read_schema(source)
            strings = [f.name for f in schema
                       if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)]
            parquet = pq.ParquetFile(source, read_dictionary=strings)
            out = parquet.read(columns=[c for c in columns if c in schema.names])
            wanted = list(more(out)) if more else []
            extra = [c for c in wanted if c in schema.names and c not in out.column_names]
            if extra:
                rest = parquet.read(columns=extra)
                for name in extra:
                    out = out.append_column(name, rest.column(name))
            if ("owner" in [*columns, *wanted] and "owner" not in schema.names
                    and "region" in schema.names):  # written before owners (as with_owner)
                out = out.append_column("owner", pa.array([""] * out.num_rows, pa.string())
                                        .dictionary_encode())
            return out

    def iter_arrow(
        self,
        table: str,
        days: Iterable[date],
        columns: Sequence[str],
        more: Callable[[pa.Table], Sequence[str]] | None = None,
    ) -> Iterator[tuple[date, pa.Table]]:
        """``read_arrow`` of each day that has a file with rows, in order; the next file is read
        on a thread while the caller works on this one (reading and decoding Parquet releases
        the GIL), so at most two files are in memory at once."""
        with ThreadPoolExecutor(max_workers=1) as pool:
            pending: Future[pa.Table | None] | None = None
            queue = list(days)
            for i, day in enumerate(queue):
                current = pending or pool.submit(self.read_arrow, table, day, columns, more)
                pending = (pool.submit(self.read_arrow, table, queue[i + 1], columns, more)
                           if i + 1 < len(queue) else None)
                got = current.result()
                if got is not None and got.num_rows:
                    yield day, got

    def partitions(self, table: str) -> list[date]:
        """Days that have a file in a table."""
        out = []
        for name in self.list_dir(table):
            if name.startswith("date="):
                try:
                    out.append(date.fromisoformat(name[len("date=") :]))
                except ValueError:
                    continue
        return sorted(out)

    def check_writable(self) -> str:
        """Write and delete a probe object; raises StorageError with the fix if it fails."""
        rel = f"_probe/{uuid.uuid4().hex}"
        path = self.write_bytes(rel, b"ok")
        if self.is_s3:
            bucket, key = self._s3_key(rel)
            self._client().delete_object(Bucket=bucket, Key=key)
        else:
            Path(path).unlink(missing_ok=True)
        return path
