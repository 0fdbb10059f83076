"""``xsl_mlctl``: word-positioned parallel samples for ML-CTL contrastive alignment.

Data directory (written by ``xsl-prep mlctl-wps``; see :mod:`preprocess.mlctl_wps`)::

    dict.txt                        the model's dictionary (the task appends <mask> and
                                    --extra-special-symbols, as xsl_masked_lm does)
    {split}.x.tokens.{bin,idx}      English sentences, <s> ids </s>
    {split}.y.tokens.{bin,idx}      their translations
    {split}.wps.npy                 int64 [samples, 6]: pair, x start, x end, y start, y end
                                    (inclusive token positions of the word), language

A batch holds n samples ``(x sentence, x word span, y sentence, y word span)`` plus the
sentence-pair index of each sample (one pair yields one sample per matched word; the
criterion keeps samples of the same pair out of each other's negatives).

Choices:

* **Batch composition.** Samples are drawn in a fresh random order every epoch and are
  *not* grouped by length: fairseq's usual length sorting would put the samples of one
  sentence pair (same lengths) into the same batch, and makes in-batch negatives
  length-correlated.
* **MLM on a separate copy.** With ``--mask-prob`` > 0 each side also gets a masked copy
  and its targets (fairseq's ``MaskTokensDataset``: 80% ``<mask>``, 10% random, 10% kept,
  deterministic per seed, epoch and sample), used only by the MLM term; the contrastive
  pass sees the clean sentence. The official code masks ``input_ids`` in place, so its
  contrastive pass sees the masked input; ``--mlctl-cl-on-masked-input`` reproduces that.
  ``--mask-prob 0`` builds no masked copies (for ``--mlm-weight 0``).
* **Set-up needs only dict.txt**, so ``xsl-eval`` can load checkpoints with the data
  directory overridden to the dictionary's directory. The ML-CTL MLP is registered on the
  model here (its width depends on the criterion's ``--levels``, mirrored into this config).
"""
import logging
import os
from dataclasses import dataclass, field

import numpy as np
import torch
from fairseq.data import FairseqDataset, data_utils
from fairseq.data.mask_tokens_dataset import MaskTokensDataset
from fairseq.tasks import register_task
from omegaconf import II, MISSING

from preprocess import InputError

from ..data.features import load_sequences
from ..input_checks import StartCheckpointConfig
from ..modules.contrastive import DUMMY_BATCH_KEY
from ..modules.mlctl import MLCTL_HEAD, MlctlProjectionHead, projection_input_dim
from .finetuning import XslDictionaryTask, load_task_dictionary

logger = logging.getLogger(__name__)

SAMPLE_COLUMNS = 6  # pair, x_start, x_end, y_start, y_end, language (preprocess.mlctl_wps)


class _PairSideDataset(FairseqDataset):
    """Sample index -> the tokens of one side of its sentence pair (input of the masking)."""

    def __init__(self, tokens, pair_index):
        self.tokens, self.pair_index = tokens, pair_index
        self.sizes = tokens.sizes[pair_index]

    def __getitem__(self, index):
        return self.tokens[int(self.pair_index[index])]

    def __len__(self):
        return len(self.pair_index)


class MlctlWpsDataset(FairseqDataset):
    """Word-positioned sample pairs; see the module docstring for the batch layout."""

    def __init__(self, x_tokens, y_tokens, samples: np.ndarray, dictionary, seed: int, shuffle: bool,
                 mask_prob: float = 0.0, leave_unmasked_prob: float = 0.1, random_token_prob: float = 0.1,
                 cl_on_masked_input: bool = False):
        if samples.ndim != 2 or samples.shape[1] != SAMPLE_COLUMNS:
            raise ValueError(f"word-positioned sample table must be [samples, {SAMPLE_COLUMNS}], got {samples.shape}")
        if len(samples) and samples[:, 0].max() >= min(len(x_tokens), len(y_tokens)):
            raise ValueError("word-positioned samples point past the sentence files")
        if cl_on_masked_input and mask_prob <= 0:
            raise ValueError("--mlctl-cl-on-masked-input needs --mask-prob > 0")
        self.samples = samples
        self.pair_index = samples[:, 0]
        self.x_side = _PairSideDataset(x_tokens, self.pair_index)
        self.y_side = _PairSideDataset(y_tokens, self.pair_index)
        spans_ok = ((samples[:, 1] >= 1) & (samples[:, 1] <= samples[:, 2]) & (samples[:, 2] < self.x_side.sizes - 1)
                    & (samples[:, 3] >= 1) & (samples[:, 3] <= samples[:, 4]) & (samples[:, 4] < self.y_side.sizes - 1))
        if not spans_ok.all():
            bad = int(np.flatnonzero(~spans_ok)[0])
            raise ValueError(f"word-positioned sample {bad} has a span outside its sentence: {samples[bad].tolist()}")
        self.sizes = np.maximum(self.x_side.sizes, self.y_side.sizes)
        self.dictionary, self.pad = dictionary, dictionary.pad()
        self.seed, self.shuffle, self.epoch = seed, shuffle, 1
        self.cl_on_masked_input = cl_on_masked_input
        self.masked = {}
        if mask_prob > 0:
            mask_idx = dictionary.index("<mask>")
            for offset, (name, side) in enumerate((("x", self.x_side), ("y", self.y_side))):
                common = dict(vocab=dictionary, pad_idx=self.pad, mask_idx=mask_idx, seed=seed + offset,
                              mask_prob=mask_prob, leave_unmasked_prob=leave_unmasked_prob,
                              random_token_prob=random_token_prob)
                self.masked[name] = (MaskTokensDataset(side, return_masked_tokens=False, **common),
                                     MaskTokensDataset(side, return_masked_tokens=True, **common))

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, index):
        row = self.samples[index]
        item = {
            "id": index,
            "pair_id": int(row[0]),
            "language": int(row[5]),
            "x": self.x_side[index],
            "y": self.y_side[index],
            "x_span": (int(row[1]), int(row[2])),
            "y_span": (int(row[3]), int(row[4])),
        }
        for name, (source, target) in self.masked.items():
            item[f"{name}_mlm_input"] = source[index]
            item[f"{name}_mlm_target"] = target[index]
        return item

    def collater(self, items):
        if not items:
            return {}

        def tokens(key):
            return data_utils.collate_tokens([it[key] for it in items], self.pad)

        x, y = tokens("x"), tokens("y")
        sample = {
            "id": torch.tensor([it["id"] for it in items], dtype=torch.long),
            "nsentences": len(items),
            "ntokens": int(x.ne(self.pad).sum() + y.ne(self.pad).sum()),
            "pair_id": torch.tensor([it["pair_id"] for it in items], dtype=torch.long),
            "language": torch.tensor([it["language"] for it in items], dtype=torch.long),
            "x": {"src_tokens": x, "src_lengths": x.ne(self.pad).sum(dim=1)},
            "y": {"src_tokens": y, "src_lengths": y.ne(self.pad).sum(dim=1)},
            "x_span": torch.tensor([it["x_span"] for it in items], dtype=torch.long),
            "y_span": torch.tensor([it["y_span"] for it in items], dtype=torch.long),
        }
        for name in self.masked:
            masked_input = tokens(f"{name}_mlm_input")
            sample[f"{name}_mlm"] = {"net_input": {"src_tokens": masked_input},
                                     "target": tokens(f"{name}_mlm_target")}
            if self.cl_on_masked_input:  # the official code's in-place masking, on request
                sample[name]["src_tokens"] = masked_input
        return sample

    def num_tokens(self, index):
        return int(self.x_side.sizes[index] + self.y_side.sizes[index])

    def num_tokens_vec(self, indices):
        return self.x_side.sizes[indices] + self.y_side.sizes[indices]

    def size(self, index):
        return int(self.sizes[index])

    def ordered_indices(self):
        if not self.shuffle:
            return np.arange(len(self), dtype=np.int64)
        with data_utils.numpy_seed(self.seed, self.epoch):
            return np.random.permutation(len(self)).astype(np.int64)

    @property
    def can_reuse_epoch_itr_across_epochs(self):
        return False  # a new batch composition (new negatives) every epoch

    def set_epoch(self, epoch):
        super().set_epoch(epoch)
        self.epoch = epoch
        for source, target in self.masked.values():
            source.set_epoch(epoch)
            target.set_epoch(epoch)


@dataclass
class XslMlctlConfig(StartCheckpointConfig):
    data: str = field(default=MISSING, metadata={"help": "directory written by xsl-prep mlctl-wps (dict.txt, "
                                                         "{split}.x/y.tokens, {split}.wps.npy)"})
    extra_special_symbols: str = field(
        default="", metadata={"help": "symbols the pretrained model appended after <mask>, e.g. '[QUE]'"}
    )
    tokens_per_sample: int = field(
        default=512, metadata={"help": "longest side (tokens, <s>/</s> included); longer samples are "
                                       "skipped (xsl-prep mlctl-wps already caps at --max-tokens-per-side)"}
    )
    mask_prob: float = field(default=0.15, metadata={"help": "MLM masking probability of the separate masked "
                                                             "copy (0 = no MLM inputs, for --mlm-weight 0)"})
    leave_unmasked_prob: float = field(default=0.1, metadata={"help": "share of masked positions left unchanged"})
    random_token_prob: float = field(default=0.1, metadata={"help": "share of masked positions replaced by a "
                                                                    "random token"})
    mlctl_cl_on_masked_input: bool = field(
        default=False, metadata={"help": "reproduce the official code's in-place masking bug: the contrastive "
                                         "pass sees the MLM-masked input"}
    )
    # Width of the ML-CTL MLP; mirrors the criterion's --levels (not a flag of its own).
    levels: str = II("oc.select:criterion.levels,both")
    seed: int = II("common.seed")


@register_task("xsl_mlctl", dataclass=XslMlctlConfig)
class XslMlctlTask(XslDictionaryTask):
    cfg: XslMlctlConfig

    @classmethod
    def setup_task(cls, cfg: XslMlctlConfig, **kwargs):
        dict_path = os.path.join(cfg.data, "dict.txt")
        if not os.path.isfile(dict_path):
            raise InputError(f"{dict_path} not found (xsl-prep mlctl-wps copies the dictionary there)")
        dictionary = load_task_dictionary(cfg)
        logger.info("dictionary: %d types (with <mask> and extra symbols)", len(dictionary))
        return cls(cfg, dictionary)

    def load_dataset(self, split, epoch=1, combine=False, **kwargs):
        prefix = os.path.join(self.cfg.data, split)
        table_path = prefix + ".wps.npy"
        if not os.path.isfile(table_path):
            raise FileNotFoundError(f"{table_path} not found (xsl-prep mlctl-wps writes train, and valid with "
                                    "--valid-pairs)")
        samples = np.load(table_path, mmap_mode="r")
        dataset = MlctlWpsDataset(
            load_sequences(prefix + ".x.tokens"), load_sequences(prefix + ".y.tokens"), samples,
            self.dictionary, seed=self.cfg.seed, shuffle=split == "train", mask_prob=self.cfg.mask_prob,
            leave_unmasked_prob=self.cfg.leave_unmasked_prob, random_token_prob=self.cfg.random_token_prob,
            cl_on_masked_input=self.cfg.mlctl_cl_on_masked_input,
        )
        logger.info("%s: %d word-positioned samples from %d sentence pairs", split, len(dataset),
                    len(np.unique(dataset.pair_index)))
        self.datasets[split] = dataset
        return dataset

    def build_model(self, cfg, from_checkpoint=False):
        model = super().build_model(cfg, from_checkpoint)
        width = projection_input_dim(self.cfg.levels, model.args.encoder_embed_dim)
        return self.attach_head(model, MLCTL_HEAD, MlctlProjectionHead(width))

    def train_step(self, sample, model, criterion, optimizer, update_num, ignore_grad=False):
        if ignore_grad:
            # fairseq's stand-in batch on a rank whose shard ran out: its loss is zeroed, and its
            # rows must not become negatives, nor its counts normalisers, of the other ranks
            sample = {**sample, DUMMY_BATCH_KEY: True}
        return super().train_step(sample, model, criterion, optimizer, update_num, ignore_grad)

    def max_positions(self):
        return self.cfg.tokens_per_sample
