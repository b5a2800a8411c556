"""Regenerate tests/data/zeroshot_reference.json: outputs of the shipped zero-shot model on a tiny
fixed dataset (weights and estimates for the three balancing problems, with the default
weight-tied steps and with the trained steps alone).

Run after shipping a new model file (and pinning its sha256):
    python scripts/make_zeroshot_reference.py
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from cina import CInA
from cina.balancing.kernel import standardize
from cina.model.checkpoint import PINNED_SHA256, load_pretrained, pretrained_path, sha256_file
from cina.solvers.zero_shot import zero_shot_weights

OUT = Path(__file__).resolve().parent.parent / "tests" / "data" / "zeroshot_reference.json"


def main() -> None:
    sha = sha256_file(pretrained_path())
    if sha != PINNED_SHA256:
        raise SystemExit(f"shipped model sha256 {sha} != pinned {PINNED_SHA256}; pin it first")
    rng = np.random.default_rng(20261127)
    n, d = 120, 3
    X = rng.standard_normal((n, d))
    X[:, 2] = (X[:, 2] > 0).astype(float)
    p = 1 / (1 + np.exp(-(0.8 * X[:, 0] - 0.4 * X[:, 1])))
    t = (rng.random(n) < p).astype(np.int64)
    y = X[:, 0] + 0.5 * X[:, 1] ** 2 + t * (1.0 + 0.5 * X[:, 2]) + 0.3 * rng.standard_normal(n)
    X, y = np.round(X, 6), np.round(y, 6)
    Z, _, _ = standardize(X)
    model, _ = load_pretrained()
    cases = []
    for balance, estimand, lam in (("target", "ate", 0.1), ("target", "att", 0.3),
                                   ("mutual", "ate", 1.0)):
        alpha, info = zero_shot_weights(Z, t, y, estimand=estimand, balance=balance,
                                        lam_rel=lam, bandwidth=None)
        trained, _ = zero_shot_weights(Z, t, y, estimand=estimand, balance=balance, lam_rel=lam,
                                       bandwidth=None, extra_steps=0)
        res = CInA(method="zero-shot", metric="standardized", augment=None, estimand=estimand,
                   balance=balance, lam_rel=lam).fit(X, t, y).result_
        cases.append({"balance": balance, "estimand": estimand, "lam_rel": lam,
                      "alpha": alpha.tolist(), "refinement_steps": info["refinement_steps"],
                      "alpha_trained_steps": trained.tolist(), "estimate": res.estimate})
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"sha256": sha, "trained_steps": model.config.n_steps,
                               "X": X.tolist(), "t": t.tolist(), "y": y.tolist(),
                               "cases": cases}))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
