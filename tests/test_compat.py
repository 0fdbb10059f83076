"""The compatibility layer: fairseq checkpoints load on torch 2.13, numpy 2 paths work."""
import argparse
import pickle

import numpy as np
import pytest
import torch

import xsl_fairseq  # noqa: F401  (applies the patches)
from xsl_fairseq import compat


def test_fairseq_checkpoint_with_namespace_loads(tmp_path):
    from fairseq import checkpoint_utils

    from omegaconf import OmegaConf

    path = tmp_path / "checkpoint.pt"
    torch.save({
        # omegaconf objects are what the weights-only unpickler of torch >= 2.6 rejects
        "cfg": OmegaConf.create({"model": {"_name": "xsl_roberta"}, "task": {"_name": "xsl_masked_lm"}}),
        "model": {"w": torch.ones(2)},
        "optimizer_history": [{"criterion_name": "c", "optimizer_name": "adam",
                               "lr_scheduler_state": {"best": 1.0}, "num_updates": 3}],
        "extra_state": {"train_iterator": {"epoch": 1}},
    }, path)
    state = checkpoint_utils.load_checkpoint_to_cpu(str(path))
    assert torch.equal(state["model"]["w"], torch.ones(2))
    assert state["optimizer_history"][-1]["num_updates"] == 3


def test_patch_is_scoped_to_fairseq(tmp_path):
    # torch.load itself keeps its safe default for everybody else
    path = tmp_path / "ns.pt"
    torch.save({"args": argparse.Namespace(x=1)}, path)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path)
    assert not hasattr(np, "compat") or np.__version__.startswith("1.")


def test_token_block_dataset_eos_mode_on_numpy2():
    from fairseq.data import TokenBlockDataset

    class Sentences(torch.utils.data.Dataset):
        items = [torch.tensor([5, 6, 2]), torch.tensor([7, 2])]

        def __getitem__(self, i):
            return self.items[i]

        def __len__(self):
            return len(self.items)

    dataset = TokenBlockDataset(Sentences(), np.array([3, 2]), block_size=None, pad=1, eos=2, break_mode="eos")
    assert [dataset[i].tolist() for i in range(2)] == [[5, 6, 2], [7, 2]]


def test_apex_is_detected_not_required():
    assert compat.apex_available() in (True, False)
    if not torch.cuda.is_available():
        assert compat.apex_available() is False
