"""Batch order shared by this plugin's pair datasets."""
import numpy as np
from fairseq.data import data_utils


def length_sorted_order(sizes: np.ndarray, seed: int, epoch: int, shuffle: bool) -> np.ndarray:
    """Shuffled (seed, epoch) when ``shuffle``, then stably sorted by ``sizes`` so batches pad little."""
    if shuffle:
        with data_utils.numpy_seed(seed, epoch):
            order = np.random.permutation(len(sizes))
    else:
        order = np.arange(len(sizes))
    return order[np.argsort(sizes[order], kind="mergesort")]
