"""Pretraining of the zero-shot balancing model.

Entry points: :func:`cina.train.pretrain.pretrain` (``python -m cina.train.pretrain CONFIG`` or
``cina pretrain --config CONFIG``), :func:`cina.train.pretrain.export_model` and
:func:`cina.train.config.load_config`. This package module stays import-light (no torch) so
that registering the CLI subcommand costs nothing.
"""

from __future__ import annotations

__all__ = ["pretrain_doc"]


def pretrain_doc() -> str:
    return ("Pretrain the zero-shot balancing model on datasets streamed from the synthetic "
            "prior.\nRe-running the same command resumes from the last checkpoint of the run "
            "directory.\nData-parallel: torchrun --nproc_per_node=K -m cina.train.pretrain "
            "CONFIG.")
