"""``xsl_trelm_cdlm``: TreLM's CdLM + MLM loss (Li et al., arXiv 2107.12627; the official code's ``CdLM``).

A batch of :class:`~xsl_fairseq.data.trelm_dataset.TrelmPairDataset` holds, per pair, a CdLM example
(the target-language token at every aligned output position, predicted through the LM head from the
unmasked input reordered by the TRILayer) and MLM examples. Both are cross entropies over the LM head
(:func:`~xsl_fairseq.modules.mlm_loss.masked_lm_loss_from_features`, the project's MLM loss), summed; the
sample size is the number of predicted tokens of both, so the loss is the mean over every predicted token
of the mixed batch, as the official Trainer's loss over its mixed batches. The two run as separate
encoder calls (their lengths differ). Logged separately: ``cdlm_loss``/``cdlm_acc`` and
``mlm_loss``/``mlm_acc`` (bits per predicted token, % correct); every rank logs every key (stages without
CdLM log zeros), so the logs can be summed.
"""
import math

import torch
from fairseq import utils
from fairseq.criterions import FairseqCriterion, register_criterion
from fairseq.dataclass import FairseqDataclass
from fairseq.logging import metrics

from ..modules.mlm_loss import masked_lm_loss, masked_lm_loss_from_features


@register_criterion("xsl_trelm_cdlm", dataclass=FairseqDataclass)
class XslTrelmCdlmCriterion(FairseqCriterion):
    def forward(self, model, sample, reduce=True):
        mlm = masked_lm_loss(model, sample["mlm"]["net_input"], sample["mlm"]["target"], self.padding_idx)
        loss, sample_size = mlm.loss, mlm.num_predicted
        zero = torch.zeros((), device=mlm.loss.device)
        cdlm_loss, cdlm_tokens, cdlm_correct = zero, zero.long(), zero.long()
        if "cdlm" in sample:
            features = model(**sample["cdlm"]["net_input"], features_only=True)[0]
            cdlm = masked_lm_loss_from_features(model, features, sample["cdlm"]["target"], self.padding_idx)
            cdlm_loss, cdlm_tokens, cdlm_correct = cdlm.loss, cdlm.num_predicted, cdlm.num_correct
            loss, sample_size = loss + cdlm.loss, sample_size + cdlm.num_predicted
        logging_output = {
            "loss": loss.detach(),
            "ntokens": sample["ntokens"],
            "nsentences": sample["nsentences"],
            "sample_size": sample_size,
            "mlm_loss": mlm.loss.detach(), "mlm_tokens": mlm.num_predicted, "mlm_correct": mlm.num_correct,
            "cdlm_loss": cdlm_loss.detach(), "cdlm_tokens": cdlm_tokens, "cdlm_correct": cdlm_correct,
        }
        return loss, sample_size, logging_output

    @staticmethod
    def reduce_metrics(logging_outputs) -> None:
        def total(key):
            return float(sum(log.get(key, 0) for log in logging_outputs))

        sample_size = max(total("sample_size"), 1.0)
        metrics.log_scalar("loss", total("loss") / sample_size / math.log(2), sample_size, round=3)
        metrics.log_derived("ppl", lambda meters: utils.get_perplexity(meters["loss"].avg))
        for part in ("cdlm", "mlm"):
            tokens = total(f"{part}_tokens")
            weight = max(tokens, 1.0)
            metrics.log_scalar(f"{part}_loss", total(f"{part}_loss") / weight / math.log(2), weight, round=3)
            metrics.log_scalar(f"{part}_acc", 100.0 * total(f"{part}_correct") / weight, weight, round=2)

    @staticmethod
    def logging_outputs_can_be_summed() -> bool:
        return True
