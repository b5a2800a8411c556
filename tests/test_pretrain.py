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
    sa = torch.load(a / "checkpoint.pt", weights_only=False)
    sb = torch.load(b / "checkpoint.pt", weights_only=False)
    assert sa["step"] == sb["step"]
    for k, v in sa["model"].items():
        torch.testing.assert_close(sb["model"][k], v, rtol=0, atol=0)


def test_configs_load():
    cfg = load_config(SMOKE)
    assert cfg.optim.max_steps == 6 and cfg.model.n_steps == 2
    v1 = load_config(ROOT / "configs" / "zeroshot-v1.toml")
    assert v1.data.generator == "scm"
    with pytest.raises(CInAValidationError, match="unknown key"):
        config_from_dict({"optim": {"learning_rate": 1.0}})


def test_smoke_run_logs_validation_and_exports(tmp_path):
    from cina.model.checkpoint import load_model, read_metadata
    from cina.train.pretrain import export_model, pretrain

    run = pretrain(SMOKE, out_dir=tmp_path / "run")
    lines = [json.loads(s) for s in (run / "metrics.jsonl").read_text().splitlines()]
    vals = [r for r in lines if r["kind"] == "val"]
    assert [r["step"] for r in vals] == [3, 6]
    for key in ("qp_gap_median", "corr_median", "corr_p10", "ess_treated_median", "ate_mae",
                "ate_mae_exact"):
        assert key in vals[-1]
    sha = export_model(run, tmp_path / "m.safetensors")
    model, meta = load_model(tmp_path / "m.safetensors", expected_sha256=sha)
    assert meta["training_data"]["steps"] == 6
    assert read_metadata(tmp_path / "m.safetensors")["metrics"]["step"] == 6
    with pytest.raises(FileExistsError):
        pretrain(SMOKE, out_dir=run, resume=False)


def test_resume_after_kill_matches_uninterrupted_run(tmp_path):
    from cina.train.pretrain import pretrain

    ref = pretrain(SMOKE, out_dir=tmp_path / "ref")
    cmd = [sys.executable, "-m", "cina.train.pretrain", str(SMOKE), "--out", str(tmp_path / "run")]
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE")}
    crashed = subprocess.run(cmd, env={**env, "CINA_PRETRAIN_KILL_AT_STEP": "5"},
                             capture_output=True, text=True)
    assert crashed.returncode == -9  # killed by SIGKILL after step 5; last checkpoint: step 4
    state = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)
    assert state["step"] == 4 and state["datasets_consumed"] == 16
    resumed = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed from" in resumed.stderr
    _states_equal(ref, tmp_path / "run")
    steps = [json.loads(s)["step"] for s in (tmp_path / "run" / "metrics.jsonl").read_text()
             .splitlines() if '"train"' in s]
    assert steps == [1, 2, 3, 4, 5, 6]  # no duplicated or lost lines
