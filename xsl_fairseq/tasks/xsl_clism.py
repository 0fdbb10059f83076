"""``xsl_clism``: CLISM span-masking pretraining data (Chen et al., NAACL 2022, §3.1).

Reads the directory written by ``xsl-prep clism-binarize`` (``dict.txt``,
``clism.json``, ``{split}.src/.tgt/.spans``) and serves batches of
:class:`~xsl_fairseq.data.clism_dataset.ClismPairDataset` examples, batched by the
length of X (``--max-tokens`` or ``--batch-size``). Train with ``--criterion xsl_clism``.

* ``[QUE]`` is appended to the dictionary after ``<mask>``
  (``--extra-special-symbols``, which must contain it). A checkpoint without it
  (official XLM-R, an imported e5, an MLM run) gets the row appended when it is loaded
  with ``--finetune-from-model`` / ``--restore-file``.
* The model gets CLISM's pointer head (W_s, W_e) as task head ``--pointer-head-name``
  (``clism_pointer``); it is saved with the model and read again by the ``[QUE]`` mode
  of ``xsl_span_qa``.
* Length caps as in the paper: a pair is skipped (counted in the log) when
  ``<s> s </s>`` is longer than ``--max-source-tokens`` (128) or ``t </s>`` than
  ``--max-target-tokens`` (128); X is then at most 256 tokens. Skipping rather than
  truncating keeps every answer inside its sentence.
"""
import json
import logging
import os
from dataclasses import dataclass, field

import numpy as np
from fairseq.dataclass import ChoiceEnum
from fairseq.tasks import register_task
from omegaconf import II, MISSING

from preprocess import InputError

from ..data.clism_dataset import SOURCE_PASSES, ClismPairDataset
from ..data.dictionary import QUE_SYMBOL, load_dictionary, parse_symbol_list
from ..data.features import load_sequences
from ..input_checks import StartCheckpointConfig
from ..modules.contrastive import DUMMY_BATCH_KEY
from ..modules.heads import QUERY_POINTER_HEAD, QueryPointerHead
from .finetuning import XslDictionaryTask

logger = logging.getLogger(__name__)

METADATA_FILE = "clism.json"  # written by xsl-prep clism-binarize


@dataclass
class XslClismConfig(StartCheckpointConfig):
    data: str = field(default=MISSING, metadata={"help": "directory written by xsl-prep clism-binarize"})
    extra_special_symbols: str = field(
        default=QUE_SYMBOL,
        metadata={"help": "symbols appended to the dictionary after <mask>; must include [QUE]"},
    )
    max_source_tokens: int = field(
        default=128, metadata={"help": "longest source segment <s> s </s>; longer pairs are skipped"})
    max_target_tokens: int = field(
        default=128, metadata={"help": "longest target segment t </s>; longer pairs are skipped"})
    mask_prob: float = field(
        default=0.15, metadata={"help": "MLM: fraction of eligible tokens of X to predict (0: no MLM masking; "
                                        "use with --mlm-weight 0)"})
    leave_unmasked_prob: float = field(default=0.1, metadata={"help": "MLM: of those, left unchanged"})
    random_token_prob: float = field(default=0.1, metadata={"help": "MLM: of those, replaced by a random token"})
    source_pass: ChoiceEnum(SOURCE_PASSES) = field(
        default="source",
        metadata={"help": "CACR's extra pass for r^s: 'source' = <s> s </s> alone (default), "
                          "'paired' = <s> s </s> t </s> (unmasked)"},
    )
    pointer_head_name: str = field(
        default=QUERY_POINTER_HEAD, metadata={"help": "task head holding W_s/W_e (kept for [QUE] fine-tuning)"})
    seed: int = II("common.seed")


@register_task("xsl_clism", dataclass=XslClismConfig)
class XslClismTask(XslDictionaryTask):
    cfg: XslClismConfig

    def __init__(self, cfg: XslClismConfig, dictionary, que_idx: int):
        super().__init__(cfg, dictionary)
        self.que_idx = que_idx

    @classmethod
    def setup_task(cls, cfg: XslClismConfig, **kwargs):
        dict_path = os.path.join(cfg.data, "dict.txt")
        if not os.path.isfile(dict_path):
            raise InputError(f"{dict_path}: not found (xsl-prep clism-binarize writes it)")
        symbols = parse_symbol_list(cfg.extra_special_symbols)
        if QUE_SYMBOL not in symbols:
            raise InputError(
                f"{dict_path}: --extra-special-symbols {cfg.extra_special_symbols!r} lacks {QUE_SYMBOL}, "
                f"which xsl_clism puts in place of every entity; add it (e.g. '{QUE_SYMBOL}')"
            )
        base_size = len(load_dictionary(dict_path))
        metadata_path = os.path.join(cfg.data, METADATA_FILE)
        if os.path.isfile(metadata_path):
            with open(metadata_path, encoding="utf-8") as handle:
                recorded = json.load(handle).get("dictionary_size")
            if recorded is not None and recorded != base_size:
                raise InputError(f"{dict_path} has {base_size} symbols with <mask> but the data in {cfg.data} "
                                 f"was binarized with {recorded} ({metadata_path}): wrong dictionary")
        dictionary = load_dictionary(dict_path, symbols)
        que_idx = dictionary.index(QUE_SYMBOL)
        logger.info("dictionary: %d types; %s = %d", len(dictionary), QUE_SYMBOL, que_idx)
        return cls(cfg, dictionary, que_idx)

    def load_dataset(self, split, epoch=1, combine=False, **kwargs):
        prefix = os.path.join(self.cfg.data, split)
        src, tgt, spans = (load_sequences(f"{prefix}.{part}") for part in ("src", "tgt", "spans"))
        if not (len(src) == len(tgt) == len(spans)):
            raise ValueError(f"{prefix}.src/.tgt/.spans hold {len(src)}/{len(tgt)}/{len(spans)} pairs")
        fits = (src.sizes + 2 <= self.cfg.max_source_tokens) & (tgt.sizes + 1 <= self.cfg.max_target_tokens)
        skipped = int((~fits).sum())
        logger.info("%s: %d pairs (%d skipped: source > %d or target > %d tokens)", prefix, int(fits.sum()),
                    skipped, self.cfg.max_source_tokens, self.cfg.max_target_tokens)
        if not fits.any():
            raise ValueError(f"{prefix}: no pair within the length caps")
        self.datasets[split] = ClismPairDataset(
            src, tgt, spans, np.flatnonzero(fits), self.dictionary, self.que_idx, self.cfg.seed,
            mask_prob=self.cfg.mask_prob, leave_unmasked_prob=self.cfg.leave_unmasked_prob,
            random_token_prob=self.cfg.random_token_prob, source_pass=self.cfg.source_pass,
            shuffle=split == "train",
        )
        return self.datasets[split]

    def build_model(self, cfg, from_checkpoint=False):
        model = super().build_model(cfg, from_checkpoint)
        return self.attach_head(model, self.cfg.pointer_head_name, QueryPointerHead(model.args.encoder_embed_dim))

    def train_step(self, sample, model, criterion, optimizer, update_num, ignore_grad=False):
        if ignore_grad:
            # fairseq's stand-in batch on a rank whose shard ran out: its loss is zeroed,
            # and its rows must not become CACR negatives, nor its counts normalisers, of the others
            sample = {**sample, DUMMY_BATCH_KEY: True}
        return super().train_step(sample, model, criterion, optimizer, update_num, ignore_grad)

    def max_positions(self):
        return self.cfg.max_source_tokens + self.cfg.max_target_tokens
