"""Search latency of `medtune similar`'s index at 10k and 100k vectors (synthetic, 1280 dimensions like Lite0's
features), exact (flat inner product, what medtune uses up to a million vectors) beside IVF, in one run.

    python benchmarks/similar.py [--sizes 10000,100000] [--queries 200] [--quick]

Prints build time, the median and 95th-percentile latency of one query (k=8), queries per second in one batch,
and how often IVF returns the exact top hit (each query is a perturbed copy of an indexed vector) and its recall@8.
Isotropic random vectors have no cluster structure, the worst case for IVF; real features cluster.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from _common import parse_args
from rich.console import Console
from rich.table import Table as RichTable

from medtune.features.similar import create_index, normalise


def measure(vectors: np.ndarray, queries: np.ndarray, exact_limit: int, k: int = 8) -> dict:
    started = time.perf_counter()
    index, kind = create_index(vectors, exact_limit=exact_limit)
    build = time.perf_counter() - started
    single = []
    for query in queries:
        started = time.perf_counter()
        index.search(query[None], k)
        single.append(time.perf_counter() - started)
    started = time.perf_counter()
    _, found = index.search(queries, k)
    batch = time.perf_counter() - started
    return {"kind": kind, "build": build, "p50": np.median(single) * 1e3, "p95": np.percentile(single, 95) * 1e3,
            "qps": len(queries) / batch, "found": found}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--queries", type=int, default=200)
    args = parse_args(parser, sizes="2000", queries=20)
    rng = np.random.default_rng(0)
    table = RichTable(title="one query, k=8, 1280 dimensions, this machine's CPU", title_justify="left")
    for column in ("vectors", "index", "build s", "p50 ms", "p95 ms", "batch queries/s", "top-1 = exact",
                   "recall@8 vs exact"):  # fmt: skip
        table.add_column(column, justify="left" if column == "index" else "right")
    for size in (int(s) for s in args.sizes.split(",")):
        vectors = rng.standard_normal((size, 1280), dtype=np.float32)
        queries = normalise(vectors[rng.choice(size, args.queries, replace=False)] + 0.1 * rng.standard_normal(
            (args.queries, 1280), dtype=np.float32))  # fmt: skip
        exact = measure(vectors, queries, exact_limit=size)
        ivf = measure(vectors, queries, exact_limit=0)
        recall = np.mean([len(set(a) & set(b)) / 8 for a, b in zip(exact["found"], ivf["found"], strict=True)])
        top1 = float(np.mean(exact["found"][:, 0] == ivf["found"][:, 0]))
        for row, first, value in ((exact, 1.0, 1.0), (ivf, top1, recall)):
            table.add_row(f"{size:,}", row["kind"], f"{row['build']:.2f}", f"{row['p50']:.2f}", f"{row['p95']:.2f}",
                          f"{row['qps']:,.0f}", f"{first:.3f}", f"{value:.3f}")  # fmt: skip
    Console(width=140).print(table)


if __name__ == "__main__":
    main()
