"""``xsl_token_labeling``: per-token cross entropy over labelled positions."""
from dataclasses import dataclass, field

import torch.nn.functional as F
from fairseq.criterions import FairseqCriterion, register_criterion
from fairseq.dataclass import FairseqDataclass
from fairseq.logging import metrics

from ..data.features import IGNORE_LABEL


@dataclass
class XslTokenLabelingCriterionConfig(FairseqDataclass):
    head_name: str = field(default="token_labeling", metadata={"help": "the task head scoring labels"})


def token_label_logits(model, net_input, head_name):
    features = model(**net_input, features_only=True)[0]
    return model.task_heads[head_name](features).float()  # B x T x labels


@register_criterion("xsl_token_labeling", dataclass=XslTokenLabelingCriterionConfig)
class XslTokenLabelingCriterion(FairseqCriterion):
    def __init__(self, cfg: XslTokenLabelingCriterionConfig, task):
        super().__init__(task)
        self.head_name = cfg.head_name

    def forward(self, model, sample, reduce=True):
        logits = token_label_logits(model, sample["net_input"], self.head_name)
        target = sample["target"]
        labelled = target.ne(IGNORE_LABEL)
        loss = F.cross_entropy(logits[labelled], target[labelled], reduction="sum")
        sample_size = labelled.sum()
        logging_output = {
            "loss": loss.detach(),
            "ntokens": sample["ntokens"],
            "nsentences": sample["nsentences"],
            "sample_size": sample_size,
            "label_correct": (logits.argmax(-1)[labelled] == target[labelled]).sum(),
        }
        return loss, sample_size, logging_output

    @staticmethod
    def reduce_metrics(logging_outputs) -> None:
        sample_size = max(float(sum(log.get("sample_size", 0) for log in logging_outputs)), 1.0)
        loss = float(sum(log.get("loss", 0) for log in logging_outputs))
        correct = float(sum(log.get("label_correct", 0) for log in logging_outputs))
        metrics.log_scalar("loss", loss / sample_size, sample_size, round=4)
        metrics.log_scalar("label_acc", 100.0 * correct / sample_size, sample_size, round=2)

    @staticmethod
    def logging_outputs_can_be_summed() -> bool:
        return True
