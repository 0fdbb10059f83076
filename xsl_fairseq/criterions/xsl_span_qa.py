"""``xsl_span_qa``: start/end cross entropy for extractive QA (sum over windows)."""
from dataclasses import dataclass, field

import torch.nn.functional as F
from fairseq.criterions import FairseqCriterion, register_criterion
from fairseq.dataclass import FairseqDataclass
from fairseq.logging import metrics

from ..modules.heads import first_query_states


@dataclass
class XslSpanQACriterionConfig(FairseqDataclass):
    head_name: str = field(default="span_qa", metadata={"help": "the task head scoring start/end"})


def span_logits(model, net_input, head_name, padding_idx, que_idx=None):
    """Start and end logits (B x T, fp32) with padding positions at -inf.

    With ``que_idx`` (``--que-mode``) the head is CLISM's pointer, read from each row's
    first ``[QUE]`` state."""
    features = model(**net_input, features_only=True)[0]
    if que_idx is None:
        start_logits, end_logits = model.task_heads[head_name](features)
    else:
        queries = first_query_states(features, net_input["src_tokens"], que_idx)
        start_logits, end_logits = model.task_heads[head_name](features, queries)
    padding = net_input["src_tokens"].eq(padding_idx)
    start_logits = start_logits.float().masked_fill(padding, float("-inf"))
    end_logits = end_logits.float().masked_fill(padding, float("-inf"))
    return start_logits, end_logits


@register_criterion("xsl_span_qa", dataclass=XslSpanQACriterionConfig)
class XslSpanQACriterion(FairseqCriterion):
    def __init__(self, cfg: XslSpanQACriterionConfig, task):
        super().__init__(task)
        self.head_name = cfg.head_name
        self.que_idx = getattr(task, "que_idx", None)  # set by xsl_span_qa --que-mode

    def forward(self, model, sample, reduce=True):
        start_logits, end_logits = span_logits(model, sample["net_input"], self.head_name, self.padding_idx,
                                               self.que_idx)
        starts, ends = sample["start_positions"], sample["end_positions"]
        loss = 0.5 * (
            F.cross_entropy(start_logits, starts, reduction="sum")
            + F.cross_entropy(end_logits, ends, reduction="sum")
        )
        sample_size = starts.numel()
        logging_output = {
            "loss": loss.detach(),
            "ntokens": sample["ntokens"],
            "nsentences": sample_size,
            "sample_size": sample_size,
            "start_correct": (start_logits.argmax(-1) == starts).sum(),
            "end_correct": (end_logits.argmax(-1) == ends).sum(),
        }
        return loss, sample_size, logging_output

    @staticmethod
    def reduce_metrics(logging_outputs) -> None:
        sample_size = max(float(sum(log.get("sample_size", 0) for log in logging_outputs)), 1.0)
        loss = float(sum(log.get("loss", 0) for log in logging_outputs))
        metrics.log_scalar("loss", loss / sample_size, sample_size, round=4)
        for key in ("start", "end"):
            correct = float(sum(log.get(f"{key}_correct", 0) for log in logging_outputs))
            metrics.log_scalar(f"{key}_acc", 100.0 * correct / sample_size, sample_size, round=2)

    @staticmethod
    def logging_outputs_can_be_summed() -> bool:
        return True
