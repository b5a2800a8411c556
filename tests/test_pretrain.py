"""Pretraining: config, a smoke run, validation log, export, and resume after a real kill -9."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cina.errors import CInAValidationError
from cina.train.config import config_from_dict, load_config

ROOT = Path(__file__).resolve().parent.parent
SMOKE = ROOT / "configs" / "smoke.toml"


def _states_equal(a: Path, b: Path) -> None:
    from cina.train.run_dir import load_checkpoint

    sa = load_checkpoint(a / "checkpoint.pt")
    sb = load_checkpoint(b / "checkpoint.pt")
    assert sa["step"] == sb["step"]
    for k, v in sa["model"].items():
        torch.testing.assert_close(sb["model"][k], v, rtol=0, atol=0)


def test_configs_load():
    cfg = load_config(SMOKE)
    assert cfg.optim.max_steps == 6 and cfg.model.n_steps == 2
    v1 = load_config(ROOT / "configs" / "zeroshot-v1.toml")
    assert v1.data.generator == "scm" and v1.optim.train_extra_steps == (0, 0)
    v2 = load_config(ROOT / "configs" / "zeroshot-v2-finetune.toml")
    assert v2.optim.train_extra_steps == (0, 12) and v2.run.init_from.endswith(".safetensors")
    with pytest.raises(CInAValidationError, match="unknown key"):
        config_from_dict({"optim": {"learning_rate": 1.0}})


def test_smoke_run_logs_validation_and_exports(tmp_path):
    from cina.model.checkpoint import load_model, read_metadata
    from cina.train.pretrain import export_model, pretrain

    run = pretrain(SMOKE, out_dir=tmp_path / "run")
    lines = [json.loads(s) for s in (run / "metrics.jsonl").read_text().splitlines()]
    vals = [r for r in lines if r["kind"] == "val"]
    assert [r["step"] for r in vals] == [3, 6]
    for key in ("qp_gap_median", "corr_median", "corr_p10", "ess_frac_treated_median", "ate_mae",
                "ate_mae_exact"):
        assert key in vals[-1]
    sha = export_model(run, tmp_path / "m.safetensors")
    model, meta = load_model(tmp_path / "m.safetensors", expected_sha256=sha)
    assert meta["training_data"]["steps"] == 6
    assert read_metadata(tmp_path / "m.safetensors")["metrics"]["step"] == 6
    with pytest.raises(CInAValidationError, match="exists; resume it"):
        pretrain(SMOKE, out_dir=run, resume=False)


def test_resume_after_kill_matches_uninterrupted_run(tmp_path):
    from cina.train.pretrain import pretrain

    ref = pretrain(SMOKE, out_dir=tmp_path / "ref")
    cmd = [sys.executable, "-m", "cina", "pretrain", "--config", str(SMOKE), "--out",
           str(tmp_path / "run")]
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE")}
    crashed = subprocess.run(cmd, env={**env, "CINA_PRETRAIN_KILL_AT_STEP": "5"},
                             capture_output=True, text=True)
    assert crashed.returncode == -9  # killed by SIGKILL after step 5; last checkpoint: step 4
    state = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    assert state["step"] == 4 and state["datasets_consumed"] == 16
    resumed = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed from" in resumed.stderr
    _states_equal(ref, tmp_path / "run")
    steps = [json.loads(s)["step"] for s in (tmp_path / "run" / "metrics.jsonl").read_text()
             .splitlines() if '"train"' in s]
    assert steps == [1, 2, 3, 4, 5, 6]  # no duplicated or lost lines


def test_tied_steps_in_training_are_unrolled_and_get_gradients():
    from cina.model.balancer import ZeroShotBalancer, ZeroShotConfig

    torch.manual_seed(0)
    model = ZeroShotBalancer(ZeroShotConfig(hidden=8, n_encoder_layers=1, step_hidden=8,
                                            n_steps=2)).double().train()
    gen = torch.Generator().manual_seed(1)
    z = torch.randn(2, 40, 3, generator=gen, dtype=torch.float64)
    t = (torch.rand(2, 40, generator=gen) < 0.5).double()
    t[:, :2], t[:, 2:4] = 1.0, 0.0
    args = (z, t, torch.ones(2, 40, dtype=torch.bool), torch.tensor([3.0, 3.0]).double(),
            torch.tensor([0.1, 0.02]).double(), torch.tensor([0, 1]))
    assert torch.all(model(*args)["steps"] == 2)  # training mode: no tied steps by default
    out = model(*args, extra_steps=5)
    assert torch.all(out["steps"] == 7)  # exactly the unroll asked for, no stopping rule
    out["objective"].log().sum().backward()
    last = model.step_mlp[-1][0].weight.grad
    assert last is not None and torch.isfinite(last).all() and last.abs().sum() > 0


def test_fine_tuning_starts_from_a_model_file(tmp_path):
    from cina.errors import CheckpointError
    from cina.model.balancer import ZeroShotBalancer
    from cina.model.checkpoint import save_model
    from cina.train.pretrain import _init_from, pretrain

    cfg = load_config(SMOKE)
    torch.manual_seed(5)
    source = ZeroShotBalancer(cfg.model)
    save_model(source, tmp_path / "src.safetensors", training_data={}, metrics={})
    cfg.run.init_from = str(tmp_path / "src.safetensors")
    target = ZeroShotBalancer(cfg.model)
    _init_from(target, cfg)
    for k, v in source.state_dict().items():
        torch.testing.assert_close(target.state_dict()[k], v, rtol=0, atol=0)
    cfg.model.n_steps += 1
    with pytest.raises(CheckpointError, match="another architecture"):
        _init_from(ZeroShotBalancer(cfg.model), cfg)
    cfg.model.n_steps -= 1
    cfg.optim.train_extra_steps = (1, 2)
    run = pretrain(cfg, out_dir=tmp_path / "ft", max_steps=2)
    assert (run / "checkpoint.pt").exists()
