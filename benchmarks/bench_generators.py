"""Speed of the synthetic generators (datasets per second, one thread).

Regenerate the results with::

    python benchmarks/bench_generators.py

It writes ``benchmarks/results/generators.md`` and ``benchmarks/results/generators.csv`` and takes
well under a minute. Each row times one configuration for about ``--seconds`` of wall time (at
least a few datasets), after one warm-up dataset, with BLAS limited to one thread.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import csv  # noqa: E402
import datetime as _dt  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from cina.datasets.synthetic import (  # noqa: E402
    SCMPrior,
    default_prior,
    sample_scm_arrays,
    sample_scm_dataset,
    simulation_a,
)

RESULTS = Path(__file__).resolve().parent / "results"


def _time(fn, seconds: float, min_count: int = 5) -> tuple[int, float]:
    fn(10**6)  # warm-up (imports, caches)
    count = 0
    t0 = time.perf_counter()
    while True:
        fn(count)
        count += 1
        elapsed = time.perf_counter() - t0
        if elapsed >= seconds and count >= min_count:
            return count, elapsed


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=3.0, help="wall time per row")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)

    try:  # BLAS may already have started its threads; cap them too
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    except ImportError:  # pragma: no cover
        pass

    d_default = default_prior().d_range
    configs = [
        ("N=1000, d=10", SCMPrior(n_range=(1000, 1000), d_range=(10, 10))),
        ("N=1000, d=25", SCMPrior(n_range=(1000, 1000), d_range=(25, 25))),
        (f"N=1000, d random {d_default[0]}-{d_default[1]} (default prior)",
         SCMPrior(n_range=(1000, 1000))),
        ("default prior (N 100-2000, d 2-50)", default_prior()),
    ]
    rows = []
    for label, prior in configs:
        for path, fn in (
            ("arrays", lambda k, p=prior: sample_scm_arrays(k, p)),
            ("CausalDataset", lambda k, p=prior: sample_scm_dataset(k, p)),
        ):
            cnt, el = _time(fn, args.seconds)
            rows.append({"config": label, "path": path, "datasets": cnt,
                         "seconds": round(el, 3), "datasets_per_s": round(cnt / el, 1),
                         "ms_per_dataset": round(1000 * el / cnt, 2)})
            print(f"{label:45s} {path:14s} {cnt / el:8.1f} datasets/s", flush=True)
    cnt, el = _time(lambda k: simulation_a(k, n=1000, shift=0.2), args.seconds)
    rows.append({"config": "simulation_a N=1000, d=10", "path": "CausalDataset",
                 "datasets": cnt, "seconds": round(el, 3),
                 "datasets_per_s": round(cnt / el, 1), "ms_per_dataset": round(1000 * el / cnt, 2)})
    print(f"{'simulation_a N=1000, d=10':45s} {'CausalDataset':14s} {cnt / el:8.1f} datasets/s")

    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / "generators.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    machine = (f"{_cpu_name()}; os.cpu_count() = {os.cpu_count()}; {platform.platform()}; "
               f"Python {platform.python_version()}; numpy {np.__version__}")
    lines = [
        "# Synthetic generator speed",
        "",
        f"- Machine: {machine}",
        "- Threads: one (BLAS limited to 1 thread); the machine may be shared, so numbers are "
        "a lower bound.",
        f"- Date: {_dt.date.today().isoformat()}",
        f"- Regenerate: `python benchmarks/bench_generators.py` (about {args.seconds:g} s per row)",
        "- `arrays` is `sample_scm_arrays` (float32 X, no DataFrame: the pretraining fast path); "
        "`CausalDataset` is `sample_scm_dataset` (float64 DataFrame).",
        "",
        "| configuration | path | datasets | seconds | datasets/s | ms/dataset |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(f"| {r['config']} | {r['path']} | {r['datasets']} | {r['seconds']} | "
                     f"{r['datasets_per_s']} | {r['ms_per_dataset']} |")
    (args.out / "generators.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out / 'generators.md'} and generators.csv", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
