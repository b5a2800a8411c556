"""Hostile and careless use of ``cina pretrain`` (issue 13 items 3, 5 and 8, and the fault
injection of the long-running commands).

A crafted pickle in a run directory never runs; a bad config is an exit-2 error naming the key,
the expected and the received value, before anything is created; a resumed run keeps its
config unless told otherwise; a kill before the first checkpoint leaves no duplicate metric
records; a run killed at a random moment and resumed ends bit-identical to an uninterrupted
run.
"""

from __future__ import annotations

import json
import os
import pathlib
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cina.cli import main
from cina.errors import CheckpointError, CInAValidationError

from ._faults import kill_after

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "configs" / "smoke.toml"


def _env() -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("RANK", "WORLD_SIZE", "CINA_PRETRAIN_KILL_AT_STEP")}
    return {**env, "PYTHONDONTWRITEBYTECODE": "1"}


def _cmd(out: Path, *extra: str, config: Path = SMOKE) -> list[str]:
    return [sys.executable, "-m", "cina", "pretrain", "--config", str(config), "--out",
            str(out), *extra]


def _pretrain(capsys, *argv) -> tuple[int, str, str]:
    rc = main(["pretrain", *[str(a) for a in argv]])
    out, err = capsys.readouterr()
    return rc, out, err


def _user_error(rc, out, err, *fragments):
    assert rc == 2, (rc, out, err)
    assert "Traceback" not in err and err.startswith("error: "), err
    for f in fragments:
        assert f in err, (f, err)


def _train_steps(run: Path) -> list[int]:
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [json.loads(s)["step"] for s in lines if json.loads(s)["kind"] == "train"]


def _assert_same_state(a: Path, b: Path) -> None:
    from cina.train.run_dir import load_checkpoint

    sa, sb = load_checkpoint(a / "checkpoint.pt"), load_checkpoint(b / "checkpoint.pt")
    assert sa["step"] == sb["step"]
    for part in ("model",):
        for k, v in sa[part].items():
            assert torch.equal(v, sb[part][k]), k
    for k, v in sa["optimizer"]["state"].items():
        for name, t in v.items():
            assert torch.equal(torch.as_tensor(t), torch.as_tensor(sb["optimizer"]["state"][k][name]))


# --- item 3: no code execution from a checkpoint ------------------------------------------------
class _Payload:
    """Unpickling this object creates the file ``marker`` (a stand-in for any code)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


def _malicious_checkpoint(path: Path, marker: Path) -> None:
    torch.save({"model": {}, "optimizer": {}, "scheduler": {}, "step": 1, "rng": {},
                "config": {}, "payload": _Payload(marker)}, path)


def test_the_payload_would_run_with_a_plain_torch_load(tmp_path):
    """The crafted file is a real exploit: an unsafe load runs it (so the tests below can
    fail)."""
    marker = tmp_path / "pwned"
    _malicious_checkpoint(tmp_path / "checkpoint.pt", marker)
    torch.load(tmp_path / "checkpoint.pt", weights_only=False)
    assert marker.exists()


def test_resume_refuses_a_malicious_checkpoint(tmp_path, capsys):
    run, marker = tmp_path / "run", tmp_path / "pwned"
    run.mkdir()
    _malicious_checkpoint(run / "checkpoint.pt", marker)
    rc, out, err = _pretrain(capsys, "--config", SMOKE, "--out", run)
    assert rc == 1, err
    assert "CheckpointError" in err and "refused" in err and "nothing in it was run" in err
    assert "Traceback" not in err
    assert not marker.exists()


def test_export_refuses_a_malicious_checkpoint(tmp_path):
    from cina.train.pretrain import export_model

    run, marker = tmp_path / "run", tmp_path / "pwned"
    run.mkdir()
    _malicious_checkpoint(run / "checkpoint.pt", marker)
    with pytest.raises(CheckpointError, match="refused"):
        export_model(run, tmp_path / "m.safetensors")
    assert not marker.exists() and not (tmp_path / "m.safetensors").exists()


def test_a_corrupt_checkpoint_is_a_clear_error(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoint.pt").write_bytes(b"PK\x03\x04 not really a zip")
    rc, _, err = _pretrain(capsys, "--config", SMOKE, "--out", run)
    assert rc == 1 and "cannot be read" in err and "Traceback" not in err


# --- item 5: the config schema ------------------------------------------------------------------
def _with(section: str, key: str, value: str) -> str:
    """The smoke config with ``key = value`` set in ``[section]`` (replacing the smoke's own)."""
    lines = SMOKE.read_text().splitlines()
    out, current, done = [], None, False
    for line in lines:
        if line.startswith("["):
            if current == section and not done:
                out.append(f"{key} = {value}")
                done = True
            current = line.strip("[] ")
        elif current == section and line.split("=")[0].strip() == key:
            continue
        out.append(line)
    if not done:
        out += ([] if current == section else [f"[{section}]"]) + [f"{key} = {value}"]
    return "\n".join(out) + "\n"


@pytest.mark.parametrize("section, key, value, fragments", [
    ("optim", "lr", '"fast"', ["[optim] lr", "a number > 0", "'fast'"]),
    ("optim", "lr", "-0.1", ["[optim] lr", "> 0", "-0.1"]),
    ("optim", "lr", "true", ["[optim] lr", "True"]),
    ("optim", "batch_size", "0", ["[optim] batch_size", "an integer >= 1", "received 0"]),
    ("optim", "batch_size", "-4", ["[optim] batch_size", "received -4"]),
    ("optim", "batch_size", "2.5", ["[optim] batch_size", "an integer", "2.5"]),
    ("run", "ckpt_every", "0", ["[run] ckpt_every", ">= 1", "received 0"]),
    ("run", "log_every", "0", ["[run] log_every", "received 0"]),
    ("run", "dtype", '"float16"', ["[run] dtype", "'float32', 'float64'", "'float16'"]),
    ("data", "n_range", "[60, 20]", ["[data] n_range", "lo <= hi", "[60, 20]"]),
    ("data", "n_range", "[2, 20]", ["[data] n_range[0]", ">= 10", "received 2"]),
    ("data", "n_range", "[20]", ["[data] n_range", "a list of 2 values"]),
    ("data", "generator", '"gausian"', ["[data] generator", "'scm', 'gaussian'"]),
    ("data", "problem_probs", "[0, 0, 0]", ["[data] problem_probs", "positive sum"]),
    ("optim", "betas", "[0.9, 1.5]", ["[optim] betas[1]", "<= 1", "1.5"]),
    ("model", "n_steps", "0", ["[model] n_steps", ">= 1"]),
    ("optim", "learning_rate", "0.1", ["unknown key(s) ['learning_rate'] in [optim]"]),
])
def test_invalid_config_values(tmp_path, capsys, section, key, value, fragments):
    config = tmp_path / "bad.toml"
    config.write_text(_with(section, key, value))
    run = tmp_path / "run"
    _user_error(*_pretrain(capsys, "--config", config, "--out", run), "pretraining config",
                *fragments)
    assert not run.exists()  # refused before anything was created


@pytest.mark.parametrize("text, fragment", [
    ("[optim\nlr = 1\n", "is not valid TOML"),
    ("[optim]\nlr = \n", "is not valid TOML"),
    ("[trainer]\nlr = 1\n", "unknown section(s) ['trainer']"),
    ("optim = 3\n", "[optim] must be a table"),
])
def test_invalid_config_files(tmp_path, capsys, text, fragment):
    config = tmp_path / "bad.toml"
    config.write_text(text)
    _user_error(*_pretrain(capsys, "--config", config, "--out", tmp_path / "run"), fragment)


def test_config_file_missing_or_a_directory(tmp_path, capsys):
    _user_error(*_pretrain(capsys, "--config", tmp_path / "none.toml"), "not found")
    _user_error(*_pretrain(capsys, "--config", tmp_path), "is a directory")


def test_python_api_validates_a_config_object():
    from dataclasses import replace

    from cina.train.config import load_config, validate_config
    from cina.train.pretrain import pretrain

    cfg = load_config(SMOKE)
    bad = replace(cfg, optim=replace(cfg.optim, batch_size=-4))
    with pytest.raises(CInAValidationError, match=r"\[optim\] batch_size"):
        validate_config(bad)
    with pytest.raises(CInAValidationError, match=r"\[optim\] batch_size"):
        pretrain(bad, out_dir="/nonexistent/never-created")


def test_unwritable_out_and_export(tmp_path, capsys):
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    _user_error(*_pretrain(capsys, "--config", SMOKE, "--out", blocker), "is a file")
    _user_error(*_pretrain(capsys, "--config", SMOKE, "--out", blocker / "run"),
                "cannot create files")
    run = tmp_path / "run"
    _user_error(*_pretrain(capsys, "--config", SMOKE, "--out", run, "--export",
                           tmp_path / "missing" / "m.safetensors"), "does not exist")
    _user_error(*_pretrain(capsys, "--config", SMOKE, "--out", run, "--export", SMOKE),
                "is the input file")
    _user_error(*_pretrain(capsys, "--config", SMOKE, "--out", run, "--export",
                           run / "checkpoint.pt"), "is the input file")
    assert not run.exists()  # every refusal came before training


def test_resume_without_a_checkpoint(tmp_path, capsys):
    _user_error(*_pretrain(capsys, "--config", SMOKE, "--out", tmp_path / "run", "--resume"),
                "--resume given", "has no checkpoint")


def test_a_changed_config_on_resume_is_refused_then_allowed_and_recorded(tmp_path, capsys):
    run = tmp_path / "run"
    assert _pretrain(capsys, "--config", SMOKE, "--out", run)[0] == 0
    saved = (run / "config.json").read_text()
    changed = tmp_path / "changed.toml"
    changed.write_text(_with("optim", "lr", "0.01").replace("max_steps = 6", "max_steps = 8"))
    _user_error(*_pretrain(capsys, "--config", changed, "--out", run),
                "optim.lr: 0.003 in the run, 0.01 now", "optim.max_steps: 6 in the run, 8 now",
                "--allow-config-change")
    assert (run / "config.json").read_text() == saved
    rc, _, err = _pretrain(capsys, "--config", changed, "--out", run, "--allow-config-change")
    assert rc == 0, err
    assert json.loads((run / "config.json").read_text())["optim"]["lr"] == 0.01
    records = [json.loads(s) for s in (run / "metrics.jsonl").read_text().splitlines()]
    change = [r for r in records if r["kind"] == "config_change"]
    assert len(change) == 1 and change[0]["step"] == 6
    assert {c["key"] for c in change[0]["changes"]} == {"optim.lr", "optim.max_steps"}
    assert _train_steps(run) == [1, 2, 3, 4, 5, 6, 7, 8]
    arch = tmp_path / "arch.toml"
    arch.write_text(_with("model", "hidden", "8"))
    _user_error(*_pretrain(capsys, "--config", arch, "--out", run, "--allow-config-change"),
                "[model] differs", "model.hidden")


# --- item 8: no duplicate metric records after a kill before the first checkpoint ---------------
def test_kill_before_the_first_checkpoint_leaves_no_duplicate_records(tmp_path):
    run = tmp_path / "run"
    killed = subprocess.run(_cmd(run), env={**_env(), "CINA_PRETRAIN_KILL_AT_STEP": "1"},
                            capture_output=True, text=True, timeout=300)
    assert killed.returncode == -9  # after step 1; the first checkpoint is at step 2
    assert not (run / "checkpoint.pt").exists() and _train_steps(run) == [1]
    done = subprocess.run(_cmd(run), env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert _train_steps(run) == [1, 2, 3, 4, 5, 6]
    vals = [json.loads(s)["step"] for s in (run / "metrics.jsonl").read_text().splitlines()
            if json.loads(s)["kind"] == "val"]
    assert vals == [3, 6]


def test_a_torn_metrics_line_is_dropped_on_resume(tmp_path):
    from cina.train.pretrain import pretrain

    run = pretrain(SMOKE, out_dir=tmp_path / "run", max_steps=4)
    with open(run / "metrics.jsonl", "a") as fh:
        fh.write('{"kind": "train", "step": 5, "log_o')  # a kill during the next append
    with pytest.warns(UserWarning, match="dropped a line cut by an interrupted write"):
        pretrain(SMOKE, out_dir=run)
    assert _train_steps(run) == [1, 2, 3, 4, 5, 6]


# --- fault injection: SIGKILL at a random moment, resume, compare --------------------------------
def _n_train_lines(run: Path) -> int:
    try:
        return (run / "metrics.jsonl").read_bytes().count(b'"kind": "train"')
    except FileNotFoundError:
        return 0


@pytest.mark.slow
def test_random_kills_then_resume_equal_the_uninterrupted_run(tmp_path):
    """SIGKILL ``cina pretrain`` at random moments (after a seeded random number of logged
    steps plus a seeded random delay: before, between or during checkpoints), resume with the
    same command until it finishes; the checkpoint (model and optimiser) is bit-identical to an
    uninterrupted run and the metrics log holds every step once."""
    from cina.train.pretrain import pretrain

    ref = pretrain(SMOKE, out_dir=tmp_path / "ref")
    rng = random.Random(20261129)
    run = tmp_path / "run"
    kills = 0
    for _ in range(3):
        proc = subprocess.Popen(_cmd(run), env=_env(), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        target = rng.randint(1, 5)
        kills += kill_after(proc, lambda: _n_train_lines(run), target, rng.uniform(0.0, 0.2))
    final = subprocess.run(_cmd(run), env=_env(), capture_output=True, text=True, timeout=300)
    assert final.returncode == 0, final.stderr
    assert kills >= 1
    _assert_same_state(ref, run)
    assert _train_steps(run) == _train_steps(ref) == [1, 2, 3, 4, 5, 6]
    leftovers = [p.name for p in run.iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []
    shutil.rmtree(ref)
