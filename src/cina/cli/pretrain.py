"""``cina pretrain --config FILE.toml``: argument parsing for :mod:`cina.train`."""

from __future__ import annotations

import argparse

__all__ = ["NAME", "HELP", "DESCRIPTION", "add_arguments", "run"]

NAME = "pretrain"
HELP = "pretrain the zero-shot balancing model"
DESCRIPTION = """\
Pretrain the zero-shot balancing model on datasets streamed from the synthetic prior.

Re-running the same command resumes from the last checkpoint of the run directory and
reproduces the uninterrupted run exactly. A resumed run keeps the configuration it was started
with: a config that differs from the run's (a changed lr, say) is refused with the list of
differences, unless --allow-config-change is given (the change is then recorded in the run's
metrics.jsonl and config.json).

Data-parallel: torchrun --nproc_per_node=K -m cina pretrain --config FILE.toml

exit codes: 0 done, 2 an invalid config or option, an unwritable --out or --export, or
            --resume without a checkpoint (message on stderr), 1 a corrupt or unsafe checkpoint
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True, metavar="FILE.toml",
                   help="TOML config file (see configs/)")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="run directory (default: the config's [run] out_dir)")
    p.add_argument("--resume", action="store_true",
                   help="require an existing checkpoint in the run directory (without it a run "
                        "resumes automatically when a checkpoint exists)")
    p.add_argument("--allow-config-change", action="store_true",
                   help="resume although the config differs from the run's (recorded in the "
                        "run directory)")
    p.add_argument("--export", default=None, metavar="FILE.safetensors",
                   help="after training, export the model to this file")


def run(args) -> int:
    """Handler of ``cina pretrain``."""
    from ..train.pretrain import train_and_export

    outcome = train_and_export(args.config, out_dir=args.out,
                               resume=True if args.resume else None, export=args.export,
                               allow_config_change=args.allow_config_change)
    if outcome.get("sha256"):
        print(f"exported {args.export} sha256={outcome['sha256']}")
    if outcome.get("run_dir"):
        print(f"run directory: {outcome['run_dir']}")
    return 0
