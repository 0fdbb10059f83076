"""``xsl_sentence_prediction``: fairseq's ``sentence_prediction`` (XNLI, PAWS-X) for
models whose dictionary has extra special symbols (``--extra-special-symbols``).

Same data layout as fairseq's task (``input0/``, ``input1/``, ``label/``); the symbols the
pretrained model appended after ``<mask>`` are appended here too, so its embedding matrix
loads without a size mismatch.

``--salt-augmented-data DIR`` (SALT offline substitutes, ``xsl_salt --salt-substitutes
offline``): every example of a split that ``DIR`` holds (written by ``xsl-prep
salt-augment``) carries its augmented twin as ``sample["salt_net_input"]["src_tokens"]``,
built exactly like the clean input (same prepended tokens, truncation and order).
"""
import logging
import os
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np
from fairseq.data import (ConcatSentencesDataset, NestedDictionaryDataset, PrependTokenDataset, RightPadDataset,
                          SortDataset, data_utils)
from fairseq.data.shorten_dataset import maybe_shorten_dataset
from fairseq.tasks import register_task
from fairseq.tasks.sentence_prediction import SentencePredictionConfig, SentencePredictionTask

from preprocess import InputError

from ..data.dictionary import add_special_symbols, parse_symbol_list
from ..input_checks import InputCheckedTask, StartCheckpointConfig, require_data_file

logger = logging.getLogger(__name__)


@dataclass
class XslSentencePredictionConfig(SentencePredictionConfig, StartCheckpointConfig):
    extra_special_symbols: str = field(
        default="", metadata={"help": "symbols the pretrained model appended after <mask>, e.g. '[QUE]'"}
    )
    salt_augmented_data: str = field(
        default="", metadata={"help": "SALT offline substitutes: a directory written by xsl-prep salt-augment "
                                      "(input0/ input1/ of the training split, aligned with the clean data)"}
    )


@register_task("xsl_sentence_prediction", dataclass=XslSentencePredictionConfig)
class XslSentencePredictionTask(InputCheckedTask, SentencePredictionTask):
    @classmethod
    def setup_task(cls, cfg, **kwargs):
        augmented = getattr(cfg, "salt_augmented_data", "")
        if augmented and not os.path.isdir(os.path.join(augmented, "input0")):
            raise InputError(f"--salt-augmented-data {augmented}: no input0/ (write it with xsl-prep salt-augment)")
        require_data_file(cfg.data, "input0/dict.txt", "fairseq's sentence_prediction layout")
        if not cfg.regression_target:
            require_data_file(cfg.data, "label/dict.txt", "fairseq's sentence_prediction layout")
        task = super().setup_task(cfg, **kwargs)
        add_special_symbols(task.dictionary, parse_symbol_list(cfg.extra_special_symbols))
        return task

    def load_dataset(self, split, combine=False, **kwargs):
        dataset = super().load_dataset(split, combine=combine, **kwargs)
        augmented_dir = getattr(self.cfg, "salt_augmented_data", "")
        if augmented_dir and os.path.isfile(os.path.join(augmented_dir, "input0", split + ".idx")):
            self.datasets[split] = self._attach_augmented(dataset, augmented_dir, split)
        elif augmented_dir and split == "train":
            raise FileNotFoundError(f"--salt-augmented-data {augmented_dir}: no input0/{split}.{{bin,idx}}")
        return self.datasets[split]

    def _augmented_tokens(self, directory, split, clean_len):
        def load(key):
            path = os.path.join(directory, key, split)
            loaded = data_utils.load_indexed_dataset(path, self.source_dictionary)
            if loaded is None or len(loaded) != clean_len:
                raise ValueError(f"{path}: {0 if loaded is None else len(loaded)} examples, the clean {split} split "
                                 f"has {clean_len}; was it written from this data directory?")
            return loaded

        input0 = load("input0")
        if self.cfg.init_token is not None:
            input0 = PrependTokenDataset(input0, self.cfg.init_token)
        input1 = load("input1")
        if self.cfg.separator_token is not None:
            input1 = PrependTokenDataset(input1, self.cfg.separator_token)
        tokens = ConcatSentencesDataset(input0, input1)
        return maybe_shorten_dataset(tokens, split, self.cfg.shorten_data_split_list, self.cfg.shorten_method,
                                     self.max_positions(), self.cfg.seed)

    def _attach_augmented(self, dataset, directory, split):
        nested = dataset.dataset if isinstance(dataset, SortDataset) else dataset
        tokens = self._augmented_tokens(directory, split, len(nested))
        if not np.array_equal(np.asarray(tokens.sizes), np.asarray(nested.sizes[0])):
            raise ValueError(f"{directory}/input0,input1/{split}: example lengths differ from the clean data "
                             "(code-switching keeps lengths); was it written from this data directory?")
        defn = OrderedDict(nested.defn)
        defn["salt_net_input.src_tokens"] = RightPadDataset(tokens, pad_idx=self.source_dictionary.pad())
        combined = NestedDictionaryDataset(defn, sizes=nested.sizes)
        logger.info("SALT: %s pairs every example with its augmented copy from %s", split, directory)
        if isinstance(dataset, SortDataset):
            return SortDataset(combined, sort_order=dataset.sort_order)
        return combined
