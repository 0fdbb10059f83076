"""Small, scoped patches that let ve-fairseq 0.12.3 run on torch 2.13 and numpy 2.

Applied once when :mod:`xsl_fairseq` is imported. Each patch replaces a module-level
name *inside one fairseq module* with a proxy, so nothing else in the process
(torch, numpy, other libraries) changes behaviour.
"""
import importlib
import importlib.util
import logging
import types

import numpy as np
import torch

logger = logging.getLogger(__name__)


class _ModuleProxy(types.ModuleType):
    """Forwards every attribute to ``wrapped`` except the ones given as overrides."""

    def __init__(self, wrapped, **overrides):
        super().__init__(wrapped.__name__)
        self._wrapped = wrapped
        self.__dict__.update(overrides)

    def __getattr__(self, name):
        return getattr(self._wrapped, name)


def _load_trusted_checkpoint(f, *args, **kwargs):
    # fairseq checkpoints pickle argparse.Namespace / omegaconf objects, which the
    # weights-only unpickler (default since torch 2.6) rejects.
    kwargs.setdefault("weights_only", False)
    return torch.load(f, *args, **kwargs)


def _patch_checkpoint_loading():
    # Upstream: facebookresearch/fairseq#5610, fixed on main by PR #5611 (not in any
    # PyPI build). Mirrors that fix: only fairseq's checkpoint_utils loads with
    # weights_only=False, which covers resume, --restore-file, --finetune-from-model
    # and from_pretrained. Checkpoints are trusted input here, as in upstream fairseq.
    from fairseq import checkpoint_utils

    if not isinstance(checkpoint_utils.torch, _ModuleProxy):
        checkpoint_utils.torch = _ModuleProxy(torch, load=_load_trusted_checkpoint)


def _patch_numpy_compat():
    # numpy 2 removed ``np.compat``; fairseq still uses ``np.compat.long`` in
    # TokenBlockDataset(break_mode="eos") and LanguagePairDataset(num_buckets>0).
    # No upstream issue found; reported in fairseq#4945's family of numpy-2 breakages
    # (PR #5645 fixes the np.float/np.int ones). ``np.compat.long`` was Python's int.
    if hasattr(np, "compat"):
        return
    from fairseq.data import language_pair_dataset, token_block_dataset

    numpy_with_compat = _ModuleProxy(np, compat=types.SimpleNamespace(long=int))
    for module in (token_block_dataset, language_pair_dataset):
        if not isinstance(module.np, _ModuleProxy):
            module.np = numpy_with_compat


def apex_available() -> bool:
    """True when NVIDIA apex with its CUDA kernels is importable.

    apex is optional: fairseq falls back to torch's LayerNorm and its own Adam.
    PyPI's ``apex`` is an unrelated web toolkit, so we check for NVIDIA's modules.
    """
    if importlib.util.find_spec("apex") is None:
        return False
    try:
        importlib.import_module("apex.normalization")
        importlib.import_module("fused_layer_norm_cuda")
    except ImportError:
        return False
    return True


def apply():
    _patch_checkpoint_loading()
    _patch_numpy_compat()
