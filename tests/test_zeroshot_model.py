"""The zero-shot model: kernel paths, equivariance, masking, outputs, shipped model, warnings."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from cina.balancing.kernel import attention_kernel, median_bandwidth, standardize
from cina.balancing.weights import balancing_objective
from cina.errors import CheckpointError, OutOfRangeWarning, OverlapWarning
from cina.model.balancer import PROBLEMS, KernelOps, ZeroShotBalancer, ZeroShotConfig
from cina.model.checkpoint import (
    MODEL_VERSION,
    PINNED_SHA256,
    load_model,
    load_pretrained,
    pretrained_path,
    read_metadata,
    save_model,
    sha256_file,
)

REF = Path(__file__).parent / "data" / "zeroshot_reference.json"


def _small_model(seed: int = 0, **kw) -> ZeroShotBalancer:
    torch.manual_seed(seed)
    cfg = ZeroShotConfig(hidden=16, n_encoder_layers=1, step_hidden=16, n_steps=3, **kw)
    model = ZeroShotBalancer(cfg).double().eval()
    model.requires_grad_(False)
    return model


def _dataset(rng: np.random.Generator, n: int, d: int):
    X = rng.standard_normal((n, d))
    X[:, 0] = (X[:, 0] > 0.3).astype(float)  # a binary column
    t = (rng.random(n) < 1 / (1 + np.exp(-X[:, -1]))).astype(np.int64)
    t[:3], t[3:6] = 1, 0
    Z, _, _ = standardize(X)
    return Z, t, median_bandwidth(Z)


def _batch(datasets, dtype=torch.float64):
    B = len(datasets)
    N = max(z.shape[0] for z, _, _ in datasets)
    D = max(z.shape[1] for z, _, _ in datasets)
    z = torch.zeros(B, N, D, dtype=dtype)
    t = torch.zeros(B, N, dtype=dtype)
    mask = torch.zeros(B, N, dtype=torch.bool)
    for b, (zz, tt, _) in enumerate(datasets):
        z[b, :len(tt), :zz.shape[1]] = torch.as_tensor(zz)
        t[b, :len(tt)] = torch.as_tensor(tt, dtype=dtype)
        mask[b, :len(tt)] = True
    bw = torch.tensor([b for _, _, b in datasets], dtype=dtype)
    return z, t, mask, bw


def test_kernel_paths_match_naive_kernel():
    rng = np.random.default_rng(1)
    data = [_dataset(rng, 70, 4), _dataset(rng, 45, 2)]
    z, t, mask, bw = _batch(data)
    V = torch.randn(2, 70, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    V = V * mask[..., None]
    dense = KernelOps(z, mask, bw, "dense").matvec(V)
    sdpa = KernelOps(z, mask, bw, "sdpa", chunk_size=16).matvec(V)
    for b, (Z, _, h) in enumerate(data):
        n = len(Z)
        K = attention_kernel(Z, h)  # the library's reference kernel (numpy, log space)
        naive = K @ V[b, :n].numpy()
        np.testing.assert_allclose(dense[b, :n].numpy(), naive, rtol=1e-9, atol=1e-10)
        np.testing.assert_allclose(sdpa[b, :n].numpy(), naive, rtol=1e-9, atol=1e-10)
        # naive softmax attention identity: K v = (K 1) * softmax(s - log h_j) v
        s = Z @ Z.T / h
        log_h = np.log(np.exp(s).sum(1))
        a = s - log_h[None, :]
        p = np.exp(a - a.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        np.testing.assert_allclose(K.sum(1)[:, None] * (p @ V[b, :n].numpy()), naive, rtol=1e-9)


@pytest.mark.parametrize("problem", [0, 1, 2])
def test_model_paths_agree_and_objective_matches(problem):
    rng = np.random.default_rng(2)
    data = [_dataset(rng, 60, 3), _dataset(rng, 40, 5)]
    z, t, mask, bw = _batch(data)
    m = _small_model(problem)
    lam = torch.tensor([0.1, 0.5], dtype=torch.float64)
    pr = torch.tensor([problem, problem])
    d = m(z, t, mask, bw, lam, pr, path="dense", return_trace=True)
    s = m(z, t, mask, bw, lam, pr, path="sdpa", return_trace=True)
    torch.testing.assert_close(d["alpha"], s["alpha"], rtol=1e-8, atol=1e-10)
    torch.testing.assert_close(d["objective"], s["objective"], rtol=1e-8, atol=1e-12)
    balance, estimand = PROBLEMS[problem]
    for b, (Z, tt, h) in enumerate(data):
        K = attention_kernel(Z, h)
        a = d["alpha"][b, :len(tt)].numpy()
        ref, _ = balancing_objective(K, tt, a, float(lam[b]), balance, estimand)
        assert float(d["objective"][b]) == pytest.approx(ref, rel=1e-8)


def test_mixed_problem_batch_matches_each_problem_alone():
    # one batch holding the three problems (the mutual one switches the per-step targets to
    # their alpha-dependent form) gives each dataset the objective of its own QP
    rng = np.random.default_rng(3)
    data = [_dataset(rng, 50, 3), _dataset(rng, 70, 2), _dataset(rng, 40, 4)]
    z, t, mask, bw = _batch(data)
    m = _small_model(11)
    lam = torch.tensor([0.1, 0.3, 0.05], dtype=torch.float64)
    out = m(z, t, mask, bw, lam, torch.tensor([0, 1, 2]))
    for b, (Z, tt, h) in enumerate(data):
        balance, estimand = PROBLEMS[b]
        a = out["alpha"][b, :len(tt)].numpy()
        ref, _ = balancing_objective(attention_kernel(Z, h), tt, a, float(lam[b]), balance,
                                     estimand)
        assert float(out["objective"][b]) == pytest.approx(ref, rel=1e-8)
        alone = m(*_batch([data[b]]), lam[b:b + 1], torch.tensor([b]))
        torch.testing.assert_close(out["alpha"][b, :len(tt)], alone["alpha"][0],
                                   rtol=1e-10, atol=1e-12)


def test_permutation_equivariance():
    rng = np.random.default_rng(3)
    Z, t, bw = _dataset(rng, 80, 4)
    perm = rng.permutation(80)
    m = _small_model(3)
    for problem in (0, 1, 2):
        args = (torch.tensor([bw]).double(), torch.tensor([0.2]).double(), torch.tensor([problem]))
        mask = torch.ones(1, 80, dtype=torch.bool)
        a = m(torch.as_tensor(Z)[None], torch.as_tensor(t).double()[None], mask, *args)["alpha"]
        b = m(torch.as_tensor(Z[perm])[None], torch.as_tensor(t[perm]).double()[None], mask,
              *args)["alpha"]
        torch.testing.assert_close(a[0, perm], b[0], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("path", ["dense", "sdpa"])
def test_padding_invariance(path):
    rng = np.random.default_rng(4)
    small, big = _dataset(rng, 30, 2), _dataset(rng, 90, 6)
    m = _small_model(4)
    z1, t1, mk1, bw1 = _batch([small])
    alone = m(z1, t1, mk1, bw1, torch.tensor([0.3]).double(), torch.tensor([0]), path=path)
    z2, t2, mk2, bw2 = _batch([big, small])
    both = m(z2, t2, mk2, bw2, torch.tensor([1.0, 0.3]).double(), torch.tensor([2, 0]),
             path=path)
    torch.testing.assert_close(both["alpha"][1, :30], alone["alpha"][0], rtol=1e-9, atol=1e-12)
    assert torch.all(both["alpha"][1, 30:] == 0)


@pytest.mark.parametrize("problem", [0, 1, 2])
def test_tied_steps_never_increase_the_objective_and_stop_per_dataset(problem):
    rng = np.random.default_rng(11)
    data = [_dataset(rng, 70, 3), _dataset(rng, 120, 5)]
    m = _small_model(5, extra_steps=40, extra_tol=1e-4)
    z, t, mask, bw = _batch(data)
    args = (z, t, mask, bw, torch.tensor([0.05, 0.3]).double(), torch.tensor([problem] * 2))
    out = m(*args, return_trace=True)
    trace = torch.stack(out["trace"], 0)  # (steps + 1, B)
    assert torch.all(trace[1:] <= trace[:-1] * (1 + 1e-12))  # the line search is monotone
    assert torch.all((out["steps"] >= 3) & (out["steps"] <= 43))
    trained = m(*args, extra_steps=0)
    assert torch.all(trained["steps"] == 3)
    assert torch.all(out["objective"] <= trained["objective"] * (1 + 1e-12))
    # a dataset's tied steps do not depend on the other datasets of the batch
    for b, d in enumerate(data):
        alone = m(*_batch([d]), torch.tensor([[0.05, 0.3][b]]).double(),
                  torch.tensor([problem]), extra_steps=40, extra_tol=1e-4)
        n = len(d[1])
        torch.testing.assert_close(out["alpha"][b, :n], alone["alpha"][0], rtol=1e-9,
                                   atol=1e-12)
        assert int(alone["steps"][0]) == int(out["steps"][b])


def test_tied_steps_are_off_in_training_mode():
    rng = np.random.default_rng(12)
    m = _small_model(6, extra_steps=40)
    m.train()
    out = m(*_batch([_dataset(rng, 60, 2)]), torch.tensor([0.1]).double(), torch.tensor([0]))
    assert int(out["steps"][0]) == 3


def test_prepared_kernel_is_reused_with_identical_results():
    rng = np.random.default_rng(13)
    m = _small_model(7)
    z, t, mask, bw = _batch([_dataset(rng, 90, 4)])
    ops = m.kernel_ops(z, mask, bw)
    for lam in (0.3, 0.03):
        lam_t = torch.tensor([lam]).double()
        fresh = m(z, t, mask, bw, lam_t, torch.tensor([0]))
        reused = m(z, t, mask, bw, lam_t, torch.tensor([0]), ops=ops)
        torch.testing.assert_close(reused["alpha"], fresh["alpha"], rtol=0, atol=0)
    first = ops.arm_density(t, mask.double())
    assert ops.arm_density(t, mask.double()) is first  # cached
    assert ops.arm_density(1 - t, mask.double()) is not first  # another treatment recomputes


def test_blocked_dense_matvec_equals_one_product():
    rng = np.random.default_rng(15)
    z, t, mask, bw = _batch([_dataset(rng, 150, 3), _dataset(rng, 110, 2)])
    ops = KernelOps(z, mask, bw, "dense")
    V = torch.as_tensor(rng.normal(size=(2, 150, 2)))
    with torch.inference_mode():
        plain = ops.matvec(V)
        ops.MATVEC_BLOCKED_FROM, ops.MATVEC_ROWS = 10, 16  # force blocks of 16 rows
        blocked = ops.matvec(V)
    torch.testing.assert_close(blocked, plain, rtol=1e-12, atol=1e-15)


def test_kernel_path_follows_the_memory_budget():
    m = _small_model(8, dense_max_bytes=4 * 1000 * 1000)
    assert m.choose_path(1000) == "dense"
    assert m.choose_path(1001) == "sdpa"
    assert m.choose_path(500, B=5) == "sdpa"
    assert m.choose_path(800, itemsize=8) == "sdpa"
    assert m.choose_path(5000, path="dense") == "dense"
    # a legacy header's dense_max_n is dropped (the budget replaced it)
    assert ZeroShotConfig.from_dict({"dense_max_n": 4096}).dense_max_bytes == 512 * 2**20


def test_prepared_balancing_serves_several_lams_like_the_function():
    from cina.solvers.zero_shot import ZeroShotBalancing, zero_shot_weights

    rng = np.random.default_rng(14)
    Z, t, _ = _dataset(rng, 250, 4)
    zb = ZeroShotBalancing(Z, t, estimand="att")
    for lam in (0.3, 0.1, 0.033):
        a, info = zb(lam)
        b, _ = zero_shot_weights(Z, t, estimand="att", lam_rel=lam)
        np.testing.assert_array_equal(a, b)
        assert info["refinement_steps"] >= 10 and info["lam_rel"] == lam
    a0, info0 = zb(0.1, extra_steps=0)
    assert info0["refinement_steps"] == 10


def test_progress_callbacks_count_chunks_and_steps():
    rng = np.random.default_rng(16)
    m = _small_model(9, extra_steps=20, chunk_size=32)
    z, t, mask, bw = _batch([_dataset(rng, 100, 3)])
    chunks = []
    ops = m.kernel_ops(z, mask, bw, path="sdpa", progress=lambda: chunks.append(1))
    assert len(chunks) == KernelOps.n_progress_chunks(100, "sdpa", 32) == 2 * 4
    assert KernelOps.n_progress_chunks(100, "dense", 32) == 0
    seen = []
    out = m(z, t, mask, bw, torch.tensor([0.1]).double(), torch.tensor([0]), ops=ops,
            on_step=seen.append)
    assert seen == list(range(1, len(seen) + 1)) and len(seen) >= 3
    assert len(seen) == int(out["steps"][0])  # one dataset: every step run is reported
    plain = m(z, t, mask, bw, torch.tensor([0.1]).double(), torch.tensor([0]), ops=ops)
    torch.testing.assert_close(plain["alpha"], out["alpha"], rtol=0, atol=0)


def test_zero_shot_progress_bars_only_when_asked(capsys):
    from cina.solvers.zero_shot import ZeroShotBalancing

    rng = np.random.default_rng(17)
    Z, t, _ = _dataset(rng, 200, 3)
    ZeroShotBalancing(Z, t, progress=False)(0.1)
    assert "zero-shot" not in capsys.readouterr().err
    zb = ZeroShotBalancing(Z, t, progress=True)
    assert zb.progress and zb.path == "dense"  # small N: no kernel chunks to count
    _, info = zb(0.1)
    err = capsys.readouterr().err
    assert "zero-shot refinement" in err and f"{info['refinement_steps']}/" in err
    # not a terminal (pytest captures stderr): no bar by default
    ZeroShotBalancing(Z, t)(0.1)
    assert "zero-shot" not in capsys.readouterr().err


def test_weights_nonnegative_and_normalised_per_arm():
    rng = np.random.default_rng(5)
    data = [_dataset(rng, 50, 3), _dataset(rng, 35, 1)]
    z, t, mask, bw = _batch(data)
    m = _small_model(5)
    for problem in (0, 1, 2):
        pr = torch.tensor([problem, problem])
        a = m(z, t, mask, bw, torch.tensor([0.05, 2.0]).double(), pr)["alpha"]
        assert torch.all(a >= 0)
        for b, (_, tt, _) in enumerate(data):
            ab = a[b, :len(tt)].numpy()
            assert ab[tt == 1].sum() == pytest.approx(1.0, abs=1e-9)
            assert ab[tt == 0].sum() == pytest.approx(1.0, abs=1e-9)
            if problem == 1:  # ATT: treated stay uniform
                np.testing.assert_allclose(ab[tt == 1], 1.0 / tt.sum(), rtol=1e-9)


@pytest.mark.parametrize("d", [1, 2, 13, 50, 100])
def test_any_number_of_covariates(d):
    rng = np.random.default_rng(6 + d)
    Z, t, bw = _dataset(rng, 40, d)
    m = _small_model(6)
    out = m(torch.as_tensor(Z)[None], torch.as_tensor(t).double()[None],
            torch.ones(1, 40, dtype=torch.bool), torch.tensor([bw]).double(),
            torch.tensor([0.1]).double(), torch.tensor([0]))
    assert torch.isfinite(out["alpha"]).all()


# --- checkpoints ------------------------------------------------------------------------------

def test_checkpoint_round_trip_and_sha_mismatch(tmp_path):
    m = _small_model(7).float()
    path = tmp_path / "m.safetensors"
    sha = save_model(m, path, training_data={"prior": "test"}, metrics={"corr_median": 0.5})
    assert sha == sha256_file(path)
    loaded, meta = load_model(path, expected_sha256=sha)
    assert meta["training_data"]["prior"] == "test" and meta["metrics"]["corr_median"] == 0.5
    assert meta["format_version"] == "1" and "cina_version" in meta
    for k, v in m.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[k], v)
    bad = tmp_path / "bad.safetensors"
    raw = bytearray(path.read_bytes())
    raw[-1] ^= 0xFF
    bad.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="sha256"):
        load_model(bad, expected_sha256=sha)
    with pytest.raises(CheckpointError, match="not found"):
        load_model(tmp_path / "missing.safetensors")


def test_shipped_model_is_pinned_and_described():
    path = pretrained_path()
    assert path.is_file()
    assert sha256_file(path) == PINNED_SHA256
    assert path.stat().st_size < 20 * 2**20
    meta = read_metadata(path)
    assert meta["training_data"]["real_covariates"].startswith("none")
    assert "corr_median" in meta["metrics"]
    model, _ = load_pretrained()
    assert not model.training


def test_corrupt_shipped_copy_raises(tmp_path):
    copy = tmp_path / pretrained_path().name
    shutil.copy(pretrained_path(), copy)
    with copy.open("r+b") as fh:
        fh.seek(-8, 2)
        fh.write(b"\x00" * 8)
    with pytest.raises(CheckpointError, match="expected"):
        load_model(copy, expected_sha256=PINNED_SHA256)


def test_shipped_model_reproduces_reference_outputs():
    from cina import CInA
    from cina.solvers.zero_shot import zero_shot_weights

    ref = json.loads(REF.read_text())
    X = np.asarray(ref["X"])
    t = np.asarray(ref["t"], dtype=np.int64)
    y = np.asarray(ref["y"])
    assert ref["sha256"] == PINNED_SHA256, "regenerate with scripts/make_zeroshot_reference.py"
    for case in ref["cases"]:
        Z, _, _ = standardize(X)
        alpha, info = zero_shot_weights(Z, t, y, estimand=case["estimand"],
                                        balance=case["balance"], lam_rel=case["lam_rel"],
                                        bandwidth=None)
        np.testing.assert_allclose(alpha, case["alpha"], rtol=1e-4, atol=1e-6)
        assert info["refinement_steps"] == case["refinement_steps"]
        trained, info0 = zero_shot_weights(Z, t, y, estimand=case["estimand"],
                                           balance=case["balance"], lam_rel=case["lam_rel"],
                                           bandwidth=None, extra_steps=0)
        np.testing.assert_allclose(trained, case["alpha_trained_steps"], rtol=1e-4, atol=1e-6)
        assert info0["refinement_steps"] == ref["trained_steps"]
        # the shipped model's own outputs: the paper's pipeline (no relevance fit, no outcome
        # model) around it
        res = CInA(method="zero-shot", metric="standardized", augment=None,
                   estimand=case["estimand"], balance=case["balance"],
                   lam_rel=case["lam_rel"]).fit(X, t, y).result_
        assert res.estimate == pytest.approx(case["estimate"], abs=1e-5)


# --- out-of-range behaviour -------------------------------------------------------------------

def _zs(Z, t, **kw):
    from cina.solvers.zero_shot import zero_shot_weights

    return zero_shot_weights(Z, t, None, estimand=kw.pop("estimand", "ate"),
                             balance=kw.pop("balance", "target"),
                             lam_rel=kw.pop("lam_rel", 0.1), bandwidth=None)


def test_in_range_has_no_warning():
    rng = np.random.default_rng(8)
    Z, t, _ = _dataset(rng, 300, 5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        alpha, info = _zs(Z, t)
    assert info["path"] == "dense" and info["model_version"] == MODEL_VERSION


def test_warns_for_too_many_units_and_covariates():
    rng = np.random.default_rng(9)
    Z, t, _ = _dataset(rng, load_pretrained()[0].config.train_n_range[1] + 100, 2)
    with pytest.warns(OutOfRangeWarning, match="exceeds the pretraining range"):
        _zs(Z, t)
    Z, t, _ = _dataset(rng, 200, 60)
    with pytest.warns(OutOfRangeWarning, match="covariate columns"):
        _zs(Z, t)


def test_warns_for_tiny_arm_and_lam_out_of_range():
    rng = np.random.default_rng(10)
    Z = rng.standard_normal((200, 3))
    t = np.zeros(200, np.int64)
    t[:3] = 1
    with pytest.warns(OutOfRangeWarning, match="treated = 3"):
        alpha, _ = _zs(Z, t)
    assert np.all(alpha >= 0)
    Z, t, _ = _dataset(rng, 200, 3)
    with pytest.warns(OutOfRangeWarning, match="lam_rel"):
        _, info = _zs(Z, t, lam_rel=50.0)
    assert info["lam_rel"] == 3.0


def test_warns_for_lack_of_overlap():
    rng = np.random.default_rng(11)
    n = 400
    t = (rng.random(n) < 0.5).astype(np.int64)
    X = rng.standard_normal((n, 2)) * 0.3 + 4.0 * t[:, None]  # arms far apart
    Z, _, _ = standardize(X)
    with pytest.warns(OverlapWarning, match="no counterpart"):
        _zs(Z, t)
