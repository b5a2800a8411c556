"""Coverage of the omitted-variable-bias bounds of ``est.sensitivity()`` on simulations with a
deliberately hidden confounder (docs/sensitivity.md, section 5).

    python benchmarks/sensitivity_coverage.py            # writes benchmarks/results/sensitivity_coverage.{md,csv}
    python benchmarks/sensitivity_coverage.py --reps 20  # a quick look

Each design draws covariates X (observed) and a confounder U ~ N(0, 1) (hidden), the treatment
from P(t = 1 | x, u) = sigmoid(a(x) + gamma u) and the outcome y = mu0(x) + tau(x) t + beta u + noise.
CInA (exact, default settings) is fitted on X alone, so its estimate carries the omitted-variable
bias of U. The confounder's true strengths (r2_y, r2_d) are computed from the data-generating
process itself (Gauss-Hermite quadrature over U given x, Monte Carlo over x; see
:func:`true_strengths`), and the bias-aware interval

    [estimate - B - z se, estimate + B + z se],   B = the bound at (r2_y, r2_d), rho = 1,

must cover the truth (the sample effect mean(tau(x_i)), over the treated for the ATT) in at least
95% of runs. The plain interval (B = 0) is reported beside it to show that the hidden confounder
matters.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
from _common import command, machine  # noqa: E402

OUT = Path(__file__).parent / "results"


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


@dataclass(frozen=True)
class HiddenConfounderDesign:
    """y = mu0(x) + tau(x) t + beta u + sigma_eps eps;  P(t = 1 | x, u) = sigmoid(a(x) + gamma u)."""

    name: str
    estimand: str
    n: int
    d: int
    gamma: float
    beta: float
    sigma_eps: float

    def a(self, X):
        if self.name == "linear":
            return 0.5 * X[:, 0] - 0.4 * X[:, 1] + 0.3 * X[:, 2]
        if self.name == "nonlinear":
            return 0.8 * X[:, 0] - 0.5 * X[:, 1] + 0.3 * X[:, 2] - 0.4
        return 0.8 * X[:, 0] - 0.5 * X[:, 1] - 0.8  # "strong-att"

    def mu0(self, X):
        if self.name == "linear":
            return X[:, 0] + 0.5 * X[:, 1] - 0.5 * X[:, 3]
        if self.name == "nonlinear":
            return X[:, 0] + 0.5 * X[:, 1] ** 2 + np.sin(2 * X[:, 2])
        return X[:, 0] + 0.5 * X[:, 1] ** 2

    def tau(self, X):
        if self.name == "nonlinear":
            return 1.0 + X[:, 0]
        return np.full(len(X), 1.0 if self.name == "linear" else 2.0)

    def sample(self, seed: int):
        rng = np.random.default_rng([1207, DESIGN_NAMES.index(self.name), seed])
        X = rng.normal(size=(self.n, self.d))
        u = rng.normal(size=self.n)
        t = (rng.random(self.n) < _sigmoid(self.a(X) + self.gamma * u)).astype(int)
        tau = self.tau(X)
        y = self.mu0(X) + tau * t + self.beta * u + self.sigma_eps * rng.normal(size=self.n)
        truth = float(tau.mean() if self.estimand == "ate" else tau[t == 1].mean())
        return X, t, y, truth


DESIGN_NAMES = ("linear", "nonlinear", "strong-att")
DESIGNS = [
    HiddenConfounderDesign("linear", "ate", n=1000, d=5, gamma=0.5, beta=0.6, sigma_eps=1.0),
    HiddenConfounderDesign("nonlinear", "ate", n=1000, d=5, gamma=0.8, beta=0.8, sigma_eps=1.0),
    HiddenConfounderDesign("strong-att", "att", n=1000, d=5, gamma=1.5, beta=1.5, sigma_eps=1.0),
]


def true_strengths(design: HiddenConfounderDesign, n_mc: int = 200_000, n_nodes: int = 80,
                   seed: int = 0) -> dict:
    """Population strengths of the hidden U for the short model that adjusts for X only.

    With e(x, u) the long propensity, e_s(x) = E[e(x, U)] the short one, and
    m_d(x) = E[U | t = d, x], v_d(x) = Var(U | t = d, x) from quadrature over U ~ N(0, 1):

    * r2_y = E[(g - g_s)^2] / E[(y - g_s)^2] = beta^2 E[v_t(x)] / (beta^2 E[v_t(x)] + sigma_eps^2);
    * r2_d = 1 - E[RR_s^2] / E[RR^2], with E[RR^2] = E[1/e + 1/(1-e)] and
      E[RR_s^2] = E[1/e_s + 1/(1-e_s)] for the ATE, and (E[e] + E[e^2/(1-e)]) / p^2 and
      (E[e_s] + E[e_s^2/(1-e_s)]) / p^2 for the ATT (p = P(t = 1));
    * the population bias of the short estimand: beta E[m_1(x) - m_0(x)] (ATE),
      beta E[e_s(x) (m_1(x) - m_0(x))] / p (ATT); and the population bound S C_y C_d.
    """
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n_mc, design.d))
    nodes, weights = np.polynomial.hermite_e.hermegauss(n_nodes)
    weights = weights / weights.sum()
    a = design.a(X)[:, None]
    e = _sigmoid(a + design.gamma * nodes[None, :])  # (n_mc, nodes)
    e_s = e @ weights
    m1 = (e * nodes) @ weights / e_s
    m0 = ((1 - e) * nodes) @ weights / (1 - e_s)
    v1 = (e * nodes**2) @ weights / e_s - m1**2
    v0 = ((1 - e) * nodes**2) @ weights / (1 - e_s) - m0**2
    ev = float(np.mean(e_s * v1 + (1 - e_s) * v0))
    sigma2_s = design.beta**2 * ev + design.sigma_eps**2
    r2_y = design.beta**2 * ev / sigma2_s
    if design.estimand == "ate":
        nu2_long = float(np.mean((1 / e + 1 / (1 - e)) @ weights))
        nu2_short = float(np.mean(1 / e_s + 1 / (1 - e_s)))
        bias = design.beta * float(np.mean(m1 - m0))
    else:
        p = float(np.mean(e_s))
        nu2_long = float(np.mean((e + e**2 / (1 - e)) @ weights)) / p**2
        nu2_short = float(np.mean(e_s + e_s**2 / (1 - e_s))) / p**2
        bias = design.beta * float(np.mean(e_s * (m1 - m0))) / p
    r2_d = 1 - nu2_short / nu2_long
    bound = float(np.sqrt(sigma2_s * nu2_short) * np.sqrt(r2_y * r2_d / (1 - r2_d)))
    return {"r2_y": float(r2_y), "r2_d": float(r2_d), "bias": bias, "bound": bound,
            "sigma2": float(sigma2_s), "nu2": nu2_short, "rho": bias / bound}


def run_design(design: HiddenConfounderDesign, reps: int, strengths: dict,
               start_seed: int = 0) -> list[dict]:
    """``reps`` seeded runs of one design: fit, sensitivity at the true strengths, coverage."""
    import cina
    from cina.sensitivity import sensitivity

    rows = []
    for rep in range(start_seed, start_seed + reps):
        X, t, y, truth = design.sample(rep)
        est = cina.CInA(estimand=design.estimand).fit(X, t, y)
        sens = sensitivity(est, benchmark_covariates=False)
        b = sens.bias_bound(strengths["r2_y"], strengths["r2_d"])
        z_se = sens.z * sens.se
        err = sens.estimate - truth
        rows.append({
            "design": design.name, "estimand": design.estimand, "rep": rep, "truth": truth,
            "estimate": sens.estimate, "se": sens.se, "bound": b, "sigma2": sens.sigma2,
            "nu2": sens.nu2, "rv": sens.rv, "rv_alpha": sens.rv_alpha,
            "covered": abs(err) <= b + z_se, "covered_plain": abs(err) <= z_se,
            "bound_ge_bias": b >= abs(strengths["bias"]),
        })
    return rows


def summarize(df: pd.DataFrame, truths: dict, header: str) -> str:
    """The markdown table of the results (one row per design, then all designs together)."""
    from scipy.stats import beta

    def share(s):
        p = float(s.mean())
        return p, float(np.sqrt(p * (1 - p) / len(s)))

    def lower95(s):  # one-sided 95% Clopper-Pearson lower bound of the coverage
        k, n = int(s.sum()), len(s)
        return float(beta.ppf(0.05, k, n - k + 1)) if k > 0 else 0.0

    lines = [
        "# Coverage of the omitted-variable-bias bounds (hidden confounder)", "", header, "",
        "CInA exact (default settings) fitted on the observed covariates; the confounder U is "
        "hidden. r2_y, r2_d: the confounder's true strengths from the data-generating process; "
        "population bias and bound: of the short estimand (the bound uses rho = 1; rho = bias / "
        "bound is the population correlation the worst case replaces). Coverage: share of runs "
        "whose bias-aware 95% interval [estimate - B - 1.96 se, estimate + B + 1.96 se] contains "
        "the true sample effect, with its Monte Carlo standard error and its one-sided 95% "
        "Clopper-Pearson lower bound; 'plain' is the ordinary interval (B = 0). sigma2 and nu2: "
        "mean estimates over the runs divided by their population values (E[(y - g_s)^2] and "
        "E[RR_s^2]).", "",
        "| design | estimand | N | runs | r2_y | r2_d | population bias | population bound | rho "
        "| mean bound (estimated) | sigma2 est./pop. | nu2 est./pop. | coverage ± SE "
        "| coverage 95% lower bound | plain coverage ± SE | bound >= bias |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for design in DESIGNS:
        g = df[df.design == design.name]
        if g.empty:
            continue
        tr = truths[design.name]
        c, c_se = share(g.covered)
        cp, cp_se = share(g.covered_plain)
        lines.append(
            f"| {design.name} | {design.estimand.upper()} | {design.n} | {len(g)} | "
            f"{tr['r2_y']:.3f} | {tr['r2_d']:.3f} | {tr['bias']:+.3f} | {tr['bound']:.3f} | "
            f"{tr['rho']:.2f} | {g.bound.mean():.3f} | {g.sigma2.mean() / tr['sigma2']:.3f} | "
            f"{g.nu2.mean() / tr['nu2']:.3f} | {c:.3f} ± {c_se:.3f} | {lower95(g.covered):.3f} | "
            f"{cp:.3f} ± {cp_se:.3f} | {g.bound_ge_bias.mean():.3f} |")
    c, c_se = share(df.covered)
    cp, cp_se = share(df.covered_plain)
    lines += [
        "", f"All designs together: coverage {c:.3f} ± {c_se:.3f} over {len(df)} runs, one-sided "
        f"95% lower bound {lower95(df.covered):.3f} (plain interval: {cp:.3f} ± {cp_se:.3f}).",
        "",
        "The estimated bound uses the weights' own second moment N sum alpha_i^2 and a "
        "cross-fitted outcome model; 'mean bound (estimated)' against 'population bound' shows "
        "how close the plug-in comes to the bound computed from the true nuisance functions. In "
        "these designs rho is 0.4-0.8, so the worst case rho = 1 leaves room: coverage near 1 is "
        "the expected result of a valid, conservative bound, not of a loose estimate of S.",
    ]
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=100, help="runs per design (default 100)")
    parser.add_argument("--from-csv", action="store_true",
                        help="rewrite the markdown from the committed CSV without refitting")
    args = parser.parse_args(argv)
    truths = {design.name: true_strengths(design) for design in DESIGNS}
    if args.from_csv:
        df = pd.read_csv(OUT / "sensitivity_coverage.csv")
        first = (OUT / "sensitivity_coverage.md").read_text().splitlines()[2] \
            if (OUT / "sensitivity_coverage.md").exists() else f"Machine: {machine()}."
        header = f"{first} Table rewritten by `{command()}`."
    else:
        rows = []
        start = time.perf_counter()
        for design in DESIGNS:
            rows += run_design(design, args.reps, truths[design.name])
            print(f"{design.name}: done ({time.perf_counter() - start:.0f} s)", flush=True)
        df = pd.DataFrame(rows)
        OUT.mkdir(exist_ok=True)
        df.to_csv(OUT / "sensitivity_coverage.csv", index=False)
        header = (f"Command: `{command()}`. Machine: {machine()}. Wall time "
                  f"{time.perf_counter() - start:.0f} s.")
    text = summarize(df, truths, header)
    (OUT / "sensitivity_coverage.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
