"""``xsl-prep trelm-combine``: TreLM's half combination (official code agcbi2017/TreLM,
``combine_half_*_model.py``; notes §5, stage 3).

The two transfer stages start from the same stage-1 checkpoint: ``--trelm-stage upper`` (2a) trains
the layers >= L/2 with the lower half frozen, ``--trelm-stage lower`` (2b) the layers < L/2 with the upper
half frozen. The combined model takes backbone layers < L/2 from the *lower*-stage checkpoint, layers
>= L/2 (and a final LayerNorm, if any) from the *upper*-stage one, and the **average** of every other
floating-point tensor (embeddings, language embedding, TRILayer, LM head, task heads), both of which
trained them. Integer buffers (versions) must agree. The output is a fairseq checkpoint at update 0
with the upper-stage configuration and no optimizer state (start stage 4 with ``--finetune-from-model``).

Checkpoints whose tensors differ in names or shapes (another architecture, another vocabulary) are
refused with the first differing tensor named.
"""
import logging
import os
import re
from typing import Dict

import torch

from . import InputError
from .atomic import atomic_paths
from .checkpoints import load_fairseq_checkpoint

logger = logging.getLogger(__name__)

_LAYER = re.compile(r"^encoder\.sentence_encoder\.layers\.(\d+)\.")


def combine_state_dicts(upper: Dict[str, torch.Tensor], lower: Dict[str, torch.Tensor],
                        upper_name: str = "upper", lower_name: str = "lower") -> Dict[str, torch.Tensor]:
    """The combined state dict and where each tensor came from (see the module docstring)."""
    if set(upper) != set(lower):
        only = sorted(set(upper) ^ set(lower))
        raise InputError(f"{upper_name} and {lower_name} hold different tensors (e.g. {only[0]!r}): "
                         "not checkpoints of the same model")
    for key in sorted(upper):
        if upper[key].shape != lower[key].shape:
            raise InputError(f"{key}: shape {tuple(upper[key].shape)} in {upper_name} but "
                             f"{tuple(lower[key].shape)} in {lower_name}: not checkpoints of the same model")
    if "encoder.trilayer.fc1.weight" not in upper:
        raise InputError(f"{upper_name}: not an xsl_trelm checkpoint (no encoder.trilayer.*)")
    layers = {int(m.group(1)) for m in map(_LAYER.match, upper) if m}
    half = (max(layers) + 1) // 2
    combined = {}
    for key in upper:
        match = _LAYER.match(key)
        if match:
            combined[key] = (lower if int(match.group(1)) < half else upper)[key].clone()
        elif key.startswith("encoder.sentence_encoder.layer_norm."):
            combined[key] = upper[key].clone()  # pre-norm's final LayerNorm sits on top of the upper half
        elif upper[key].is_floating_point():
            combined[key] = ((upper[key].double() + lower[key].double()) / 2).to(upper[key].dtype)
        else:
            if not torch.equal(upper[key], lower[key]):
                raise InputError(f"{key}: differs between {upper_name} and {lower_name}")
            combined[key] = upper[key].clone()
    return combined


def combine_checkpoints(upper_path: str, lower_path: str, output_path: str) -> dict:
    upper = load_fairseq_checkpoint(upper_path, required=("model", "cfg"))
    lower = load_fairseq_checkpoint(lower_path, required=("model", "cfg"))
    combined = combine_state_dicts(upper["model"], lower["model"], upper_path, lower_path)
    layers = {int(m.group(1)) for m in map(_LAYER.match, combined) if m}
    state = {
        "args": None,
        "cfg": upper["cfg"],
        "model": combined,
        "optimizer_history": [{**(upper.get("optimizer_history") or [{}])[-1], "num_updates": 0,
                               "optimizer_name": "none", "lr_scheduler_state": {"best": None}}],
        "task_state": {},
        "extra_state": {"train_iterator": {"epoch": 1, "iterations_in_epoch": 0, "shuffle": True, "version": 2},
                        "previous_training_time": 0.0,
                        "xsl_trelm_combine": {"upper": os.path.abspath(upper_path),
                                              "lower": os.path.abspath(lower_path)}},
    }
    with atomic_paths(output_path) as (staged,):
        torch.save(state, staged)
    report = {"layers": len(layers), "lower_layers_from": lower_path, "upper_layers_from": upper_path,
              "averaged_tensors": sum(1 for k, v in combined.items()
                                      if not _LAYER.match(k) and v.is_floating_point()
                                      and not k.startswith("encoder.sentence_encoder.layer_norm."))}
    logger.info("trelm-combine: layers < %d from %s, >= %d from %s, %d tensors averaged -> %s",
                len(layers) // 2, lower_path, len(layers) // 2, upper_path, report["averaged_tensors"], output_path)
    return report
