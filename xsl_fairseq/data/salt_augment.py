"""Offline SALT substitutes (``xsl-prep salt-augment``; ``xsl_salt --salt-substitutes offline``).

Following the paper's description; details not published (see ``xsl_fairseq/modules/salt.py``).
The *initial* model code-switches the training split of a ``sentence_prediction`` data
directory (``input0/ input1/ label/``) once; the copy has the same examples, lengths and
labels, so the task (``--salt-augmented-data DIR``) pairs every clean example with its
augmented twin by index. Each pair is predicted as the model sees it in fine-tuning,
``<init> A </s> <sep> B </s>``, with all chosen positions masked at once; offline copies
hold tokens, so only code-switching is offline (mixup weights are per batch, online).
"""
import json
import logging
import os
import shutil
from typing import Dict

import torch
from fairseq.data import data_utils

from preprocess import InputError
from preprocess.atomic import atomic_directory

from ..modules import salt
from .features import write_sequences

logger = logging.getLogger(__name__)


def _load_split(data_dir: str, key: str, split: str):
    path = os.path.join(data_dir, key, split)
    dataset = data_utils.load_indexed_dataset(path, None)
    if dataset is None:
        raise InputError(f"{path}.{{bin,idx}}: not found (a sentence_prediction data directory has "
                         f"input0/, input1/ and label/ with binarized {split} files)")
    return dataset


def write_salt_augmented_copy(model, dictionary, data_dir: str, out_dir: str, split: str = "train",
                              cs_prob: float = 0.15, topk: int = 5, sampling: str = "sample",
                              random_substitutes: bool = False, seed: int = 1, init_token: int = 0,
                              separator_token: int = 2, batch_size: int = 64) -> Dict[str, int]:
    """Write ``out_dir/{input0,input1,label}/split`` (+ dictionaries and ``salt_augment.json``)."""
    if not 0.0 < cs_prob <= 1.0:
        raise InputError(f"--cs-prob must lie in (0, 1], got {cs_prob}")
    if sampling not in ("sample", "argmax"):
        raise InputError(f"--sampling must be sample or argmax, got {sampling!r}")
    if os.path.abspath(out_dir) == os.path.abspath(data_dir):
        raise InputError(f"{out_dir}: the augmented copy must not overwrite its source directory")
    firsts = _load_split(data_dir, "input0", split)
    seconds = _load_split(data_dir, "input1", split)
    if len(firsts) != len(seconds):
        raise InputError(f"{data_dir}: input0/{split} has {len(firsts)} examples but input1/{split} has "
                         f"{len(seconds)}")
    if len(firsts) == 0:
        raise InputError(f"{data_dir}/input0/{split}: no examples")
    largest = max(int(max(firsts[i].max(), seconds[i].max())) for i in range(len(firsts)))
    if largest >= len(dictionary):
        raise InputError(f"{data_dir}: token id {largest} is outside the model's dictionary ({len(dictionary)} "
                         "symbols); was the data written for another model?")
    mask_idx = dictionary.index("<mask>")
    if mask_idx == dictionary.unk():
        raise InputError("the model's dictionary has no <mask> symbol")
    special_ids = salt.special_token_ids(dictionary)
    excluded = salt.vocabulary_exclusion(len(dictionary), special_ids)
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    model = model.eval()
    out0, out1, switched, candidates_total = [], [], 0, 0
    try:
        for start in range(0, len(firsts), batch_size):
            pairs = [(firsts[i].long(), seconds[i].long()) for i in range(start, min(start + batch_size, len(firsts)))]
            rows = [torch.cat([torch.tensor([init_token]), a, torch.tensor([separator_token]), b]) for a, b in pairs]
            tokens = data_utils.collate_tokens(rows, dictionary.pad())
            candidates = salt.augmentable_positions(tokens, special_ids)
            chosen = salt.choose_positions(candidates, cs_prob, 0.0)
            substitutes = salt.predict_substitutes(model, tokens, chosen.any, topk, excluded, mask_idx,
                                              random=random_substitutes)
            augmented, _ = salt.build_augmented_input(model, tokens, chosen, substitutes,
                                                 sample_substitute=sampling == "sample")
            switched += int(chosen.code_switch.sum())
            candidates_total += int(candidates.sum())
            for row, (a, b) in zip(augmented, pairs):
                out0.append(row[1:1 + len(a)].tolist())
                out1.append(row[2 + len(a):2 + len(a) + len(b)].tolist())
    finally:
        torch.random.set_rng_state(generator_state)
    report = {"source": os.path.abspath(data_dir), "split": split, "examples": len(out0),
              "code_switched_tokens": switched, "augmentable_tokens": candidates_total, "cs_prob": cs_prob,
              "topk": topk, "sampling": sampling, "random_substitutes": random_substitutes, "seed": seed}
    with atomic_directory(out_dir) as staging:  # the whole copy or nothing (the task reads input0/ first)
        write_sequences(os.path.join(staging, "input0", split), out0)
        write_sequences(os.path.join(staging, "input1", split), out1)
        os.makedirs(os.path.join(staging, "label"), exist_ok=True)
        for key, suffixes in (("label", (".bin", ".idx")),):
            for suffix in suffixes:
                shutil.copy(os.path.join(data_dir, key, split + suffix), os.path.join(staging, key, split + suffix))
        for key in ("input0", "label"):
            source = os.path.join(data_dir, key, "dict.txt")
            if os.path.isfile(source):
                shutil.copy(source, os.path.join(staging, key, "dict.txt"))
        with open(os.path.join(staging, "salt_augment.json"), "w", encoding="utf-8") as out:
            json.dump(report, out, indent=1)
    logger.info("salt-augment: %d examples, %d of %d tokens code-switched -> %s", len(out0), switched,
                candidates_total, out_dir)
    return report
