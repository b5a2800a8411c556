"""Many groups at once: ``cina.groups.estimate_by`` against a per-group loop, in one job.

G groups of n units ("smooth" design of benchmarks/_common.py, d = 5, one seed per group), the
zero-shot method with its data-driven rules (bandwidth, lam, balance guard, kernel se):

* ``loop``: ``CInA(method="zero-shot", **cina.groups.GROUP_PIPELINE).fit`` on each group in
  turn (what a user would write; the groups' pipeline: standardised keys, plain weighting);
  on ``--loop-groups`` of the groups when fewer than G (its per-group time is then scaled to G,
  and the table says so);
* ``batched``: ``estimate_by`` in this process (padded batches through the model);
* ``dask``: ``estimate_by`` with a LocalCluster of ``--workers`` single-threaded processes.

The table (benchmarks/results/groups.md, .csv) gives seconds for G groups, the ratio to the
loop measured in the same job, and the largest difference of the estimates from the loop's.
The machine is shared: read the ratios, not the seconds.

    python benchmarks/groups.py --groups 1000 --units 1000 --loop-groups 100 --workers 2
"""

from __future__ import annotations

import argparse
import os
import time
import warnings
from pathlib import Path

import pandas as pd
from _common import command, design, machine

OUT = Path(__file__).resolve().parent / "results"


def frame(groups: int, units: int) -> pd.DataFrame:
    parts = []
    for g in range(groups):
        X, t, y, _ = design("smooth", g, units)
        df = pd.DataFrame(X, columns=[f"x{j}" for j in range(X.shape[1])])
        df["t"], df["y"], df["group"] = t, y, g
        parts.append(df)
    return pd.concat(parts, ignore_index=True)


def loop(df: pd.DataFrame, groups: list) -> dict:
    import cina
    from cina.groups import GROUP_PIPELINE

    params = cina.CInA().get_params()
    pipeline = {k: v for k, v in GROUP_PIPELINE.items() if k in params}
    out = {}
    for g in groups:
        sub = df[df.group == g]
        est = cina.CInA(method="zero-shot", **pipeline)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est.fit(sub.drop(columns=["t", "y", "group"]), sub["t"], sub["y"])
        out[g] = est.effect_
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--groups", type=int, default=1000)
    ap.add_argument("--units", type=int, default=1000)
    ap.add_argument("--loop-groups", type=int, default=None,
                    help="groups the per-group loop runs (default: all)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", default=str(OUT / "groups"))
    args = ap.parse_args()
    from cina.groups import estimate_by
    from cina.model.checkpoint import load_pretrained

    load_pretrained()  # the once-per-process model load is not part of any timing
    df = frame(args.groups, args.units)
    G = args.groups
    loop_groups = list(range(min(G, args.loop_groups or G)))
    load1 = os.getloadavg()[0]
    start = time.perf_counter()
    ref = loop(df, loop_groups)
    t_loop = (time.perf_counter() - start) * G / len(loop_groups)
    rows = [{"variant": "loop (CInA per group)", "seconds": t_loop,
             "note": "" if len(loop_groups) == G else
             f"{len(loop_groups)} groups timed, scaled to {G}"}]

    def compare(table, label, seconds):
        by = table.set_index("group")["estimate"]
        diff = max(abs(by[g] - ref[g]) for g in loop_groups)
        rows.append({"variant": label, "seconds": seconds,
                     "max_abs_diff_vs_loop": diff,
                     "groups_ok": int((table.status == "ok").sum())})

    start = time.perf_counter()
    table = estimate_by(df, "group", "t", "y", method="zero-shot", progress=False)
    compare(table, "estimate_by, batched, in process", time.perf_counter() - start)
    threads = table.attrs.get("threads_rule", "")
    if args.workers > 0:
        from distributed import Client, LocalCluster

        with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                          host="127.0.0.1", dashboard_address=None) as cluster, \
                Client(cluster) as client:
            client.run(load_pretrained)  # the workers' model load, as above
            start = time.perf_counter()
            table = estimate_by(df, "group", "t", "y", method="zero-shot", client=client,
                                progress=False)
            compare(table, f"estimate_by, Dask LocalCluster ({args.workers} workers x 1 thread)",
                    time.perf_counter() - start)
    res = pd.DataFrame(rows)
    res["ratio_vs_loop"] = res["seconds"].iloc[0] / res["seconds"]
    res.insert(0, "units_per_group", args.units)
    res.insert(0, "groups", G)
    out = Path(args.out)
    res.to_csv(out.with_suffix(".csv"), index=False)
    lines = [
        "# Many groups at once (`cina estimate --by`, `cina.groups.estimate_by`)", "",
        f"Machine: {machine()}; load average at the start {load1:.1f} (shared machine: read "
        "the ratios, measured in the same job).", f"Command: `{command()}`", "",
        f"{G} groups of {args.units} units (smooth design, d = 5), method zero-shot with the "
        "groups' pipeline (`cina.groups.GROUP_PIPELINE`: the standardised covariates' kernel, "
        "data-driven bandwidth, lam (GP rule, balance guard), the plain weighting estimate with "
        "the kernel standard error and the bias-aware interval) per group; the loop runs "
        "`CInA(method=\"zero-shot\")` with the same settings. In-process threads: "
        f"{threads}.", "",
        "| variant | seconds | ratio vs loop | max abs diff of estimates vs loop | groups ok | note "
        "|", "|---|---|---|---|---|---|"]
    for r in res.to_dict(orient="records"):
        diff = r.get("max_abs_diff_vs_loop")
        lines.append(f"| {r['variant']} | {r['seconds']:.1f} | {r['ratio_vs_loop']:.2f} | "
                     f"{'' if pd.isna(diff) else f'{diff:.1e}'} | "
                     f"{'' if pd.isna(r.get('groups_ok')) else int(r['groups_ok'])} | "
                     f"{'' if pd.isna(r.get('note')) else r['note']} |")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
