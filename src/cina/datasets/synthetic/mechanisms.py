"""Mechanisms ``f(G)`` of the SCMs, with ``G`` the (p, N) matrix of the parents'
standardised values, and the standardisation the mechanisms see."""

from __future__ import annotations

import math

import numpy as np

from ._common import _FEATURE_CLIP


def _draw_mech(rng: np.random.Generator, kind: str, p: int) -> tuple[str, dict]:
    r = 1.0 / math.sqrt(p)
    if kind == "linear":
        return kind, {"w": rng.standard_normal(p) * r}
    if kind in ("mlp_tanh", "mlp_relu"):
        h = int(rng.integers(4, 17))
        gain = rng.uniform(0.5, 3.0)
        return kind, {"W": rng.standard_normal((h, p)) * (gain * r),
                      "b": rng.standard_normal((h, 1)) * 0.5,
                      "v": rng.standard_normal(h)}
    if kind == "polynomial":
        c = rng.standard_normal(3)
        c[0] = 1.0 if c[0] >= 0 else -1.0
        c[2] *= 0.3
        return kind, {"W": rng.standard_normal((3, p)) * r, "c": c}
    if kind == "threshold":
        k = int(rng.integers(1, 4))
        return kind, {"V": rng.standard_normal((k, p)) * r,
                      "c": rng.standard_normal((k, 1)) * 0.7,
                      "a": rng.standard_normal(k)}
    if kind == "sine":
        return kind, {"w": rng.uniform(1.0, 3.0, (p, 1)),
                      "phi": rng.uniform(0.0, 2 * math.pi, (p, 1)),
                      "a": rng.standard_normal(p)}
    if kind == "interaction":
        return kind, {"W": rng.standard_normal((3, p)) * r,
                      "c": np.array([1.0, rng.uniform(0.0, 0.5)])}
    raise AssertionError(kind)  # pragma: no cover - names are validated by SCMPrior


def _apply_mech(mech: tuple[str, dict], G: np.ndarray) -> np.ndarray:
    kind, prm = mech
    if kind == "linear":
        return prm["w"] @ G
    if kind == "mlp_tanh":
        return prm["v"] @ np.tanh(prm["W"] @ G + prm["b"])
    if kind == "mlp_relu":
        H = prm["W"] @ G
        H += prm["b"]
        np.maximum(H, 0.0, out=H)
        return prm["v"] @ H
    if kind == "polynomial":
        U = prm["W"] @ G
        c = prm["c"]
        return c[0] * U[0] + c[1] * U[1] * U[1] + c[2] * U[2] * U[2] * U[2]
    if kind == "threshold":
        return prm["a"] @ (prm["V"] @ G > prm["c"]).astype(np.float64)
    if kind == "sine":
        return prm["a"] @ np.sin(prm["w"] * G + prm["phi"])
    if kind == "interaction":
        U = prm["W"] @ G
        prod = U[0] * U[1]
        return prod + prm["c"][1] * prod * U[2]
    raise AssertionError(kind)  # pragma: no cover


def _standardize(v: np.ndarray) -> np.ndarray:
    v = v - float(v.sum()) / v.size
    sd = math.sqrt(float(v @ v) / v.size)
    if sd > 1e-12:
        v *= 1.0 / sd
    else:
        v[:] = 0.0
    return v


def _normalize(v: np.ndarray, stats: tuple[float, float] | None) -> np.ndarray:
    """Standardise with the sample's own mean and sd, or with fixed ``(mean, sd)``."""
    if stats is None:
        return _standardize(v)
    return (v - stats[0]) * (1.0 / stats[1])


def _feature(v: np.ndarray) -> np.ndarray:
    """A column as the mechanisms see it: standardised and clipped to +-5 sd."""
    v = _standardize(v.astype(np.float64, copy=True))
    return np.clip(v, -_FEATURE_CLIP, _FEATURE_CLIP, out=v)
