"""``xsl_meta_mlm``: the ``xsl_masked_lm`` loss plus its share per language.

For the ``xsl_meta_mlm`` task (meta-pretraining schedules, following the paper's
description; details not published), whose batches are monolingual and carry ``lang_id``.
Every logging output holds ``mlm_loss_<lang>`` / ``mlm_size_<lang>`` for *every* language
of the task (zero for the languages not in the batch), so the keys are the same on every
rank and on dummy batches and the scalars sum across data-parallel ranks. Logged:
``loss_<lang>`` in bits per masked token (TensorBoard: ``train_inner/loss_de``; validation
subsets ``valid_<lang>`` give held-out perplexity per language).
"""
import math

from fairseq.criterions import register_criterion
from fairseq.dataclass import FairseqDataclass
from fairseq.logging import metrics

from .xsl_masked_lm import XslMaskedLMCriterion

LOSS_PREFIX, SIZE_PREFIX = "mlm_loss_", "mlm_size_"


@register_criterion("xsl_meta_mlm", dataclass=FairseqDataclass)
class XslMetaMLMCriterion(XslMaskedLMCriterion):
    def __init__(self, task):
        super().__init__(task)
        languages = getattr(task, "languages", None)
        if not languages:
            raise ValueError("criterion xsl_meta_mlm needs --task xsl_meta_mlm (per-language batches)")
        self.languages = list(languages)

    def forward(self, model, sample, reduce=True):
        loss, sample_size, logging_output = super().forward(model, sample, reduce)
        lang_id = int(sample["lang_id"]) if "lang_id" in sample else -1
        for i, lang in enumerate(self.languages):
            hit = i == lang_id
            logging_output[LOSS_PREFIX + lang] = logging_output["loss"] if hit else 0.0
            logging_output[SIZE_PREFIX + lang] = logging_output["sample_size"] if hit else 0
        return loss, sample_size, logging_output

    @staticmethod
    def reduce_metrics(logging_outputs) -> None:
        XslMaskedLMCriterion.reduce_metrics(logging_outputs)
        languages = sorted({k[len(LOSS_PREFIX):] for log in logging_outputs for k in log
                            if k.startswith(LOSS_PREFIX)})
        for lang in languages:
            size = float(sum(log.get(SIZE_PREFIX + lang, 0) for log in logging_outputs))
            if size > 0:
                loss = float(sum(log.get(LOSS_PREFIX + lang, 0) for log in logging_outputs))
                metrics.log_scalar(f"loss_{lang}", loss / size / math.log(2), size, round=3)

    @staticmethod
    def logging_outputs_can_be_summed() -> bool:
        return True
