"""``xsl_masked_lm``: fairseq's MLM loss that also logs prediction accuracy.

Loss and gradient are those of fairseq's ``masked_lm`` criterion (sum-reduced cross
entropy over masked tokens, sample size = number of masked tokens). The extra
``mlm_acc`` scalar makes the TensorBoard curve readable at a glance.
"""
import math

from fairseq import utils
from fairseq.criterions import FairseqCriterion, register_criterion
from fairseq.dataclass import FairseqDataclass
from fairseq.logging import metrics

from ..modules.mlm_loss import masked_lm_loss


@register_criterion("xsl_masked_lm", dataclass=FairseqDataclass)
class XslMaskedLMCriterion(FairseqCriterion):
    def forward(self, model, sample, reduce=True):
        mlm = masked_lm_loss(model, sample["net_input"], sample["target"], self.padding_idx)
        logging_output = {
            "loss": mlm.loss.detach(),
            "ntokens": sample["ntokens"],
            "nsentences": sample["nsentences"],
            "sample_size": mlm.num_predicted,
            "mlm_correct": mlm.num_correct,
        }
        return mlm.loss, mlm.num_predicted, logging_output

    @staticmethod
    def reduce_metrics(logging_outputs) -> None:
        loss_sum = sum(log.get("loss", 0) for log in logging_outputs)
        sample_size = sum(log.get("sample_size", 0) for log in logging_outputs)
        correct = sum(log.get("mlm_correct", 0) for log in logging_outputs)
        denominator = max(float(sample_size), 1.0)
        metrics.log_scalar("loss", loss_sum / denominator / math.log(2), sample_size, round=3)
        metrics.log_scalar("mlm_acc", 100.0 * float(correct) / denominator, sample_size, round=2)
        metrics.log_derived("ppl", lambda meters: utils.get_perplexity(meters["loss"].avg))

    @staticmethod
    def logging_outputs_can_be_summed() -> bool:
        return True
