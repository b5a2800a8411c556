"""Data-parallel pretraining: 2 gloo processes == 1 process with the combined batch."""

from __future__ import annotations

import os
import socket
from dataclasses import replace
from pathlib import Path

import torch
import torch.multiprocessing as mp

from cina.train.config import load_config

SMOKE = Path(__file__).resolve().parent.parent / "configs" / "smoke.toml"


def _config():
    cfg = load_config(SMOKE)
    return replace(cfg, run=replace(cfg.run, val_every=0, dtype="float64"),
                   optim=replace(cfg.optim, max_steps=4))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, out: str) -> None:
    import torch.distributed as dist

    from cina.train.pretrain import pretrain

    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    try:
        pretrain(_config(), out_dir=out)
        # both ranks reach the teardown together: gloo aborts a process ("terminate called
        # without an active exception") whose peer tore its connections down first
        dist.barrier()
    finally:
        dist.destroy_process_group()


def test_two_gloo_processes_match_one_process(tmp_path):
    from cina.train.pretrain import pretrain

    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path / "ddp")), nprocs=2, join=True)
    for k in ("RANK", "WORLD_SIZE"):
        assert k not in os.environ
    pretrain(_config(), out_dir=tmp_path / "single")
    a = torch.load(tmp_path / "ddp" / "checkpoint.pt", weights_only=False)
    b = torch.load(tmp_path / "single" / "checkpoint.pt", weights_only=False)
    assert a["step"] == b["step"] == 4
    for k, v in b["model"].items():
        torch.testing.assert_close(a["model"][k], v, rtol=1e-9, atol=1e-10)
    assert not torch.equal(b["model"]["init_head.weight"],
                           torch.zeros_like(b["model"]["init_head.weight"]))
