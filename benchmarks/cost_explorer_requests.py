"""Benchmark: Cost Explorer requests (and their $0.01 price) of a daily run and of backfills.

Runs the real Cost Explorer source (boto3 client) against the local fake of the API used by the
tests, with fake credentials; AWS does not publish the page size, so the fake's (--page-size
groups) is an assumption, printed with the figures. Drill-downs add one request per alert.
Usage: python benchmarks/cost_explorer_requests.py [--series 200] [--page-size 1000]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from datetime import date, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--series", type=int, default=200, help="service x account pairs")
    parser.add_argument("--page-size", type=int, default=1000, help="groups per page (fake)")
    args = parser.parse_args()

    from sentinel_pipeline.sources.cost_explorer import CostExplorer, fetch_costs
    from sentinel_pipeline_tests.fake_cost_explorer import Item, fake_cost_explorer

    empty = Path(tempfile.mkdtemp()) / "none"
    empty.write_text("")
    os.environ.update(AWS_ACCESS_KEY_ID="fake", AWS_SECRET_ACCESS_KEY="fake",
                      AWS_EC2_METADATA_DISABLED="true", AWS_SHARED_CREDENTIALS_FILE=str(empty),
                      AWS_CONFIG_FILE=str(empty))
    os.environ.pop("AWS_PROFILE", None)
    end = date(2025, 12, 31)
    first = end - timedelta(days=364)
    accounts = 5
    services = max(1, args.series // accounts)
    with fake_cost_explorer() as fake:
        os.environ["AWS_ENDPOINT_URL_COST_EXPLORER"] = fake.url
        fake.page_size = args.page_size
        fake.items = [Item(first + timedelta(days=d), f"service-{s}", f"{a:012d}", "us-east-1",
                           "BoxUsage", 1.0)
                      for d in range(365) for s in range(services) for a in range(accounts)]
        fake.items += [Item(first + timedelta(days=d), "Tax", "000000000000", "global", "Tax",
                            0.1, "Tax") for d in range(365)]
        print(f"{services * accounts} series, fake page size {args.page_size} groups")
        for days in (1, 90, 365):
            fake.requests.clear()
            rows_result = fetch_costs(end - timedelta(days=days - 1), end, ce=CostExplorer())
            rows = rows_result.rows
            meta = rows_result.metadata
            assert meta["ce_requests"] == len(fake.requests)
            print(f"{days:>4} day(s): {len(rows):>6} rows, {meta['ce_requests']:>3} requests "
                  f"(${meta['ce_request_cost_usd']:.2f}) + 1 per alert drill-down")


if __name__ == "__main__":
    main()
