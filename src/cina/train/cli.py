"""``cina pretrain``: registered in :mod:`cina.cli` with ``add_pretrain_parser``."""

from __future__ import annotations

import argparse

__all__ = ["add_pretrain_parser", "add_run_arguments"]


def add_run_arguments(p: argparse.ArgumentParser) -> None:
    """--out, --resume and --export: shared by ``cina pretrain`` and ``python -m
    cina.train.pretrain``."""
    p.add_argument("--out", default=None, help="run directory (default: [run] out_dir)")
    p.add_argument("--resume", action="store_true",
                   help="require an existing checkpoint in the run directory (without it a run "
                        "resumes automatically when a checkpoint exists)")
    p.add_argument("--export", default=None, metavar="FILE.safetensors",
                   help="after training, export the model to this file")


def add_pretrain_parser(subparsers) -> argparse.ArgumentParser:
    """Add ``cina pretrain --config FILE.toml [--resume] [--out DIR] [--export FILE]``."""

    def _run(args):  # heavy imports only when the command runs
        from .pretrain import run_cli

        return run_cli(args)

    from . import pretrain_doc

    p = subparsers.add_parser("pretrain", help="pretrain the zero-shot balancing model",
                              description=pretrain_doc(),
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True, help="TOML config file (see configs/)")
    add_run_arguments(p)
    p.set_defaults(handler=_run, config_pos=None)
    return p
