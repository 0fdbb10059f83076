"""Pre-tokenised fine-tuning features stored as fairseq mmap indexed datasets.

``xsl-eval`` (and users) write token ids and per-token labels with
:func:`write_sequences`; the fine-tuning tasks read them back with
:func:`load_sequences`. int64 storage keeps negative values (``IGNORE_LABEL``) intact.
"""
import os
from typing import Iterable, Sequence

import numpy as np
import torch
from fairseq.data import indexed_dataset

from preprocess.atomic import atomic_paths

IGNORE_LABEL = -1  # per-token label of positions that carry no target


def write_sequences(path_prefix: str, sequences: Iterable[Sequence[int]]) -> int:
    """Write ``path_prefix.{bin,idx}``; returns the number of sequences written. Both appear only
    when complete, the ``.idx`` (what readers check for) last."""
    count = 0
    with atomic_paths(path_prefix + ".bin", path_prefix + ".idx") as (bin_path, idx_path):
        builder = indexed_dataset.MMapIndexedDatasetBuilder(bin_path, dtype=np.int64)
        for sequence in sequences:
            builder.add_item(torch.as_tensor(sequence, dtype=torch.int64))
            count += 1
        builder.finalize(idx_path)
    return count


def load_sequences(path_prefix: str) -> indexed_dataset.MMapIndexedDataset:
    if not indexed_dataset.MMapIndexedDataset.exists(path_prefix):
        raise FileNotFoundError(f"dataset not found: {path_prefix}.{{bin,idx}}")
    return indexed_dataset.MMapIndexedDataset(path_prefix)
