"""``xsl_trelm_cdlm``: TreLM's staged transfer training (Li et al., arXiv 2107.12627; official code
agcbi2017/TreLM, ``train_trelm_*`` / ``transfer_train_trelm_*``).

Reads the directory written by ``xsl-prep trelm-align`` (``dict.txt``, ``trelm.json``,
``{split}.src/.tgt/.align/.align_rev``) and trains an ``xsl_trelm`` model (``--criterion xsl_trelm_cdlm``).
``--trelm-stage`` picks the examples (:mod:`xsl_fairseq.data.trelm_dataset`) and freezes exactly what the
official scripts freeze:

=============== ======================================== ============================================
stage           examples per pair (1:1)                  trainable
=============== ======================================== ============================================
``commonality`` MLM(English) + MLM(new language)         embeddings (word, position, LayerNorm,
                                                         language), TRILayer, LM head; all backbone
                                                         layers frozen
``upper``       CdLM(English -> new) + MLM(new)           embeddings, TRILayer, layers >= L/2, head
                                                         (layers < L/2 frozen; the notes' "2a")
``lower``       CdLM(new -> English) + MLM(new)           embeddings, TRILayer, layers < L/2, head
                                                         (layers >= L/2 frozen; "2b", ``--fix_ahalf``)
``language``    MLM(new language)                         everything
=============== ======================================== ============================================

The official pooler (BERT's) has no counterpart in RoBERTa; classification and task heads count as head.
``--freeze-embeddings`` of ``xsl_roberta`` still applies on top. The trainable parameter count of the stage
is logged at start. Language ids: ``--source-lang-id`` (English, 0) and ``--target-lang-id`` (1).
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

from ..data.dictionary import load_dictionary
from ..data.features import load_sequences
from ..data.trelm_dataset import STAGE_EXAMPLES, TrelmPairDataset
from ..input_checks import StartCheckpointConfig
from .finetuning import XslDictionaryTask

logger = logging.getLogger(__name__)

METADATA_FILE = "trelm.json"  # written by xsl-prep trelm-align
STAGES = tuple(STAGE_EXAMPLES)
# parameter groups of XslTrelmModel.trelm_parameter_groups trained in each stage
TRAINABLE_GROUPS = {
    "commonality": ("embeddings", "trilayer", "head"),
    "upper": ("embeddings", "trilayer", "upper", "head"),
    "lower": ("embeddings", "trilayer", "lower", "head"),
    "language": ("embeddings", "lower", "trilayer", "upper", "head"),
}


@dataclass
class XslTrelmCdlmConfig(StartCheckpointConfig):
    data: str = field(default=MISSING, metadata={"help": "directory written by xsl-prep trelm-align"})
    trelm_stage: ChoiceEnum(STAGES) = field(
        default="upper", metadata={"help": "TreLM training stage: examples and frozen parameters (see the docs)"})
    source_lang_id: int = field(default=0, metadata={"help": "language id of the source (English) side"})
    target_lang_id: int = field(default=1, metadata={"help": "language id of the target (new-language) side"})
    max_tokens_per_side: int = field(
        default=128, metadata={"help": "skip pairs (counted) with a side longer than this, <s> and </s> included"})
    mask_prob: float = field(default=0.15, metadata={"help": "MLM: fraction of tokens to predict"})
    leave_unmasked_prob: float = field(default=0.1, metadata={"help": "MLM: of those, left unchanged"})
    random_token_prob: float = field(default=0.1, metadata={"help": "MLM: of those, replaced by a random token"})
    seed: int = II("common.seed")


def freeze_for_stage(model, stage: str) -> dict:
    """Freeze the parameter groups the stage does not train; returns the counts that are logged."""
    if not hasattr(model, "trelm_parameter_groups"):
        raise ValueError(f"--task xsl_trelm_cdlm needs an xsl_trelm architecture (e.g. --arch xsl_trelm_tiny), "
                         f"got {type(model).__name__}")
    groups = model.trelm_parameter_groups()
    trainable = TRAINABLE_GROUPS[stage]
    for name, params in groups.items():
        if name not in trainable:
            for param in params:
                param.requires_grad_(False)
    counts = {name: sum(p.numel() for p in params) for name, params in groups.items()}
    return {
        "stage": stage,
        "trainable_groups": list(trainable),
        "group_parameters": counts,
        "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "total_parameters": sum(p.numel() for p in model.parameters()),
    }


@register_task("xsl_trelm_cdlm", dataclass=XslTrelmCdlmConfig)
class XslTrelmCdlmTask(XslDictionaryTask):
    cfg: XslTrelmCdlmConfig

    @classmethod
    def setup_task(cls, cfg: XslTrelmCdlmConfig, **kwargs):
        dict_path = os.path.join(cfg.data, "dict.txt")
        if not os.path.isfile(dict_path):
            raise InputError(f"{dict_path}: not found (xsl-prep trelm-align writes it)")
        if cfg.source_lang_id == cfg.target_lang_id or min(cfg.source_lang_id, cfg.target_lang_id) < 0:
            raise InputError(f"--source-lang-id {cfg.source_lang_id} / --target-lang-id {cfg.target_lang_id}: "
                             "two different non-negative language ids needed")
        dictionary = load_dictionary(dict_path)
        metadata_path = os.path.join(cfg.data, METADATA_FILE)
        if os.path.isfile(metadata_path):
            with open(metadata_path, encoding="utf-8") as handle:
                recorded = json.load(handle).get("dictionary_size")
            if recorded is not None and recorded != len(dictionary):
                raise InputError(f"{dict_path} has {len(dictionary)} symbols with <mask> but {cfg.data} was "
                                 f"binarized with {recorded} ({metadata_path}): wrong dictionary")
        logger.info("dictionary: %d types; stage %s", len(dictionary), cfg.trelm_stage)
        return cls(cfg, dictionary)

    def load_dataset(self, split, epoch=1, combine=False, **kwargs):
        prefix = os.path.join(self.cfg.data, split)
        parts = {part: load_sequences(f"{prefix}.{part}") for part in ("src", "tgt", "align", "align_rev")}
        lengths = {part: len(data) for part, data in parts.items()}
        if len(set(lengths.values())) != 1:
            raise ValueError(f"{prefix}.*: the parts hold different numbers of pairs: {lengths}")
        if not (np.array_equal(parts["align"].sizes, parts["tgt"].sizes)
                and np.array_equal(parts["align_rev"].sizes, parts["src"].sizes)):
            raise ValueError(f"{prefix}.align / .align_rev do not match the token files (one per token)")
        limit = self.cfg.max_tokens_per_side
        fits = (parts["src"].sizes + 2 <= limit) & (parts["tgt"].sizes + 2 <= limit)
        logger.info("%s: %d pairs (%d skipped: a side longer than %d tokens)", prefix, int(fits.sum()),
                    int((~fits).sum()), limit)
        if not fits.any():
            raise ValueError(f"{prefix}: no pair within --max-tokens-per-side {limit}")
        self.datasets[split] = TrelmPairDataset(
            parts["src"], parts["tgt"], parts["align"], parts["align_rev"], np.flatnonzero(fits), self.dictionary,
            self.cfg.trelm_stage, self.cfg.source_lang_id, self.cfg.target_lang_id, self.cfg.seed,
            mask_prob=self.cfg.mask_prob, leave_unmasked_prob=self.cfg.leave_unmasked_prob,
            random_token_prob=self.cfg.random_token_prob, shuffle=split == "train",
        )
        return self.datasets[split]

    def build_model(self, cfg, from_checkpoint=False):
        model = super().build_model(cfg, from_checkpoint)
        languages = model.encoder.language_embeddings.num_embeddings if hasattr(model.encoder, "language_embeddings") else 0
        if max(self.cfg.source_lang_id, self.cfg.target_lang_id) >= languages > 0:
            raise ValueError(f"language ids {self.cfg.source_lang_id}/{self.cfg.target_lang_id} need "
                             f"--trelm-num-languages > {max(self.cfg.source_lang_id, self.cfg.target_lang_id)}")
        report = freeze_for_stage(model, self.cfg.trelm_stage)
        self.freeze_report = report
        logger.info("TreLM stage %s: %d of %d parameters trainable (groups %s; sizes %s)", report["stage"],
                    report["trainable_parameters"], report["total_parameters"], report["trainable_groups"],
                    report["group_parameters"])
        return model

    def max_positions(self):
        return self.cfg.max_tokens_per_side
