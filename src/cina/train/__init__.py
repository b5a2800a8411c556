"""Pretraining of the zero-shot balancing model.

Entry points: :func:`cina.train.pretrain.pretrain` (train or resume a run),
:func:`cina.train.pretrain.export_model`, :func:`cina.train.pretrain.train_and_export` (what
``cina pretrain --config CONFIG`` runs; data-parallel with
``torchrun --nproc_per_node=K -m cina pretrain --config CONFIG``) and
:func:`cina.train.config.load_config` (the checked TOML config). The run directory's files
(checkpoint, metrics log, config) are :mod:`cina.train.run_dir`. This package module stays
import-light (no torch).
"""
