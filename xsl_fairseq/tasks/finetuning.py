"""Shared pieces of the fine-tuning tasks (span QA, token labelling, sentence pairs)."""
import os

import numpy as np
from fairseq.data import (
    IdDataset,
    NestedDictionaryDataset,
    NumelDataset,
    NumSamplesDataset,
    RightPadDataset,
    SortDataset,
    data_utils,
)

from fairseq.tasks import FairseqTask
from fairseq.utils import safe_getattr

from preprocess import InputError

from ..data.dictionary import load_dictionary, parse_symbol_list
from ..data.features import load_sequences
from ..input_checks import InputCheckedTask


def load_task_dictionary(cfg):
    """``<data>/dict.txt`` + ``<mask>`` + ``--extra-special-symbols``."""
    return load_dictionary(os.path.join(cfg.data, "dict.txt"), parse_symbol_list(cfg.extra_special_symbols))


class XslDictionaryTask(InputCheckedTask, FairseqTask):
    """Base of this plugin's tasks that read one dictionary (source = target) and put a
    named head on ``XslRobertaModel``; options and the start checkpoint are checked
    (:class:`~xsl_fairseq.input_checks.InputCheckedTask`)."""

    def __init__(self, cfg, dictionary):
        super().__init__(cfg)
        self.dictionary = dictionary

    def attach_head(self, model, name: str, head):
        if not hasattr(model, "register_task_head"):
            raise ValueError(
                f"task {self.cfg._name} needs an xsl_roberta architecture (e.g. --arch xsl_roberta_base), "
                f"got {type(model).__name__}"
            )
        model.register_task_head(name, head)
        return model

    @property
    def source_dictionary(self):
        return self.dictionary

    @property
    def target_dictionary(self):
        return self.dictionary


class FeatureFinetuningTask(XslDictionaryTask):
    """Base of the tasks that read pre-tokenised feature files beside ``dict.txt`` and
    put the head ``--head-name`` on ``XslRobertaModel`` (span QA, token labelling)."""

    def attach_head(self, model, head):
        return super().attach_head(model, self.cfg.head_name, head)

    def max_positions(self):
        return None  # features are cut to the model's limit when they are written

    def build_model(self, cfg, from_checkpoint=False):
        # RoBERTa sizes its position table from --max-positions, else from the task's
        # max_positions(), which is None here: say so instead of a TypeError inside fairseq.
        if safe_getattr(cfg, "max_positions", None) is None and safe_getattr(cfg, "tokens_per_sample", None) is None:
            raise InputError(f"--task {self.cfg._name}: give --max-positions (the size of the model's position "
                             "table, e.g. 512 for xsl_e5_small and xsl_roberta_base; xsl-eval passes it)")
        return super().build_model(cfg, from_checkpoint)


def token_input_dataset(cfg, split, dictionary, targets: dict, shuffle: bool):
    """``{split}.tokens`` plus ``targets`` as a shuffled (train) or ordered dataset."""
    tokens = load_sequences(os.path.join(cfg.data, f"{split}.tokens"))
    dataset = NestedDictionaryDataset(
        {
            "id": IdDataset(),
            "net_input": {
                "src_tokens": RightPadDataset(tokens, pad_idx=dictionary.pad()),
                "src_lengths": NumelDataset(tokens, reduce=False),
            },
            **targets,
            "nsentences": NumSamplesDataset(),
            "ntokens": NumelDataset(tokens, reduce=True),
        },
        sizes=[tokens.sizes],
    )
    if not shuffle:
        return dataset
    with data_utils.numpy_seed(cfg.seed):
        order = np.random.permutation(len(dataset))
    return SortDataset(dataset, sort_order=[order])
