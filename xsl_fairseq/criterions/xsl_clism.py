"""``xsl_clism``: CLISM span pointing + CACR consistency + MLM (Chen et al., NAACL 2022, Eq. 9).

L = w_clism * L_clism + w_cacr * L_cacr + w_mlm * L_mlm, weights 1 by default; any
weight can be 0 for the ablations of the paper's Table 4 (a zero CACR weight also
skips the extra source pass; for "w/o MLM" also pass the task's ``--mask-prob 0`` so
that X carries no ``<mask>``).

* **L_clism** (Eqs. 1-4). For every ``[QUE]`` q of X with state x_q, the pointer head
  gives P(start = k) = softmax_k(x_k . W_s x_q) and the same for the end; the loss is
  -log P(start = answer start) - log P(end = answer end), averaged over all ``[QUE]``s
  of the batch. The softmax runs over every non-pad token of X (``--pointer-domain
  all``, the paper's "each token representation in X") or only over the target
  segment (``target``).
* **L_cacr** (Eqs. 7-8). Mean-pooled last-layer states of the masked source r̂^s and of
  the target r^t (each segment's real tokens; ``[QUE]`` and ``<mask>`` count, ``<s>``,
  ``</s>`` and pads do not) from the pass over X, and r^s from an extra pass over the
  unmasked source. L_cacr = L(r^t, r̂^s) + L(r^s, r̂^s) + L(r^t, r^s), where L(a, b) is
  cross entropy over cos(a_i, b_j) / τ with label i (the positive is in the
  denominator), averaged over pairs. Candidates b_j come from the whole global batch:
  every rank gathers (with padding, gradients kept) the representations of all ranks.
  τ defaults to 0.05: the paper's "τ = 20" read as a logit scale of 20; ``--cacr-
  temperature 20`` gives the literal, nearly flat, version. ``--cacr-symmetric`` uses
  (L(a, b) + L(b, a)) / 2 for each of the three terms.
* **L_mlm**: cross entropy over the masked positions of X (the task never masks
  ``[QUE]`` or answer tokens), averaged over predicted tokens. It reuses the pass over X.

Normalisation: the sample size is the number of pairs, and each term is rescaled so
that dividing by it yields the term's own mean (per ``[QUE]``, per pair, per masked
token): the CLISM sum by pairs / ``[QUE]``s and the MLM sum by pairs / masked tokens,
with all three counts summed over the data-parallel ranks (one all-reduce of three
numbers per step). Fairseq divides the summed losses by the summed sample sizes, so one
update on N ranks is exactly Eq. 9 with means over the global batch, as on one rank with
the same examples (``tests/test_data_parallel.py``). With ``--update-freq`` k the update
is the pair-weighted average of the k micro-batches' Eq. 9.

Logged (console, JSON, TensorBoard): ``loss`` (the weighted total, nats), ``clism_loss``
(nats per ``[QUE]``, start + end), ``cacr_loss`` (nats per pair, three terms),
``mlm_loss`` (bits per masked token, comparable with ``xsl_masked_lm``'s ``loss``),
``start_acc`` / ``end_acc`` (% of ``[QUE]``s whose argmax is the answer's first / last
token), ``cacr_acc`` (% of anchors whose most similar candidate is their positive) and
``mlm_acc``. All are sums in the logging output with the same keys on every rank.
"""
import logging
import math
from dataclasses import dataclass, field
from typing import NamedTuple

import torch
import torch.nn.functional as F
from fairseq.criterions import FairseqCriterion, register_criterion
from fairseq.dataclass import ChoiceEnum, FairseqDataclass
from fairseq.logging import metrics

from preprocess import InputError

from ..modules.contrastive import (DUMMY_BATCH_KEY, contrastive_loss, cosine_logits, gather_across_ranks,
                                   sum_across_ranks)
from ..modules.mlm_loss import masked_lm_loss_from_features
from ..modules.pooling import masked_mean, segment_mask, stack_token_batches

logger = logging.getLogger(__name__)

POINTER_DOMAINS = ("all", "target")
SOURCE_PASS_BATCHING = ("auto", "separate", "joint")
# (anchor, candidate) of the three terms of Eq. 8, as indices into (r^s, r̂^s, r^t)
SOURCE, MASKED_SOURCE, TARGET = 0, 1, 2
CACR_TERMS = ((TARGET, MASKED_SOURCE), (SOURCE, MASKED_SOURCE), (TARGET, SOURCE))


@dataclass
class XslClismCriterionConfig(FairseqDataclass):
    clism_weight: float = field(default=1.0, metadata={"help": "weight of the span-pointer loss (0: w/o CLISM)"})
    cacr_weight: float = field(default=1.0, metadata={"help": "weight of the contrastive term (0: w/o CACR)"})
    mlm_weight: float = field(default=1.0, metadata={"help": "weight of the MLM loss (0: w/o MLM)"})
    pointer_domain: ChoiceEnum(POINTER_DOMAINS) = field(
        default="all", metadata={"help": "pointer softmax over all tokens of X (paper) or the target only"})
    cacr_temperature: float = field(
        default=0.05, metadata={"help": "τ of cos/τ; the paper's '20' read as a scale (1/20); 20 = literal"})
    cacr_symmetric: bool = field(default=False, metadata={"help": "average L(a, b) and L(b, a) per term"})
    source_pass_batching: ChoiceEnum(SOURCE_PASS_BATCHING) = field(
        default="auto", metadata={"help": "separate: the unmasked source in its own encoder call (no padding; "
                                          "fastest where cost follows tokens, as on CPU); joint: stacked with X "
                                          "in one call (padded to X's width; one set of kernel launches, faster "
                                          "on a GPU for small models); auto: joint on CUDA, else separate"})


class CacrResult(NamedTuple):
    loss: torch.Tensor  # per local pair, sum of the three terms (n)
    correct: torch.Tensor  # number of anchors whose argmax is their positive
    anchors: int  # number of anchors scored


def cacr_loss(source: torch.Tensor, masked_source: torch.Tensor, target: torch.Tensor, temperature: float,
              symmetric: bool = False, share_negatives: bool = True) -> CacrResult:
    """Eq. 8 with L(a, b) over the global batch: local anchors, candidates from every rank.

    Collective: every rank must call it on every step. ``share_negatives=False`` (a
    dummy batch) still takes part in the gather but contributes no rows.
    """
    local = torch.cat([source, masked_source, target], dim=1)
    width = source.size(1)
    gathered, offset = gather_across_ranks(local if share_negatives else local[:0])
    if not share_negatives:
        # The trainer zeroes this loss; its own rows come after the other ranks' only so that
        # the gather stays in the graph: its backward is an all-reduce the other ranks wait for.
        gathered, offset = torch.cat([gathered, local]), gathered.size(0)
    views = [local[:, k * width:(k + 1) * width] for k in range(3)]
    candidates = [gathered[:, k * width:(k + 1) * width] for k in range(3)]
    positive = torch.arange(local.size(0), device=local.device) + offset
    total = local.new_zeros(local.size(0), dtype=torch.float32)
    correct, anchors = 0, 0
    for anchor, candidate in CACR_TERMS:
        directions = [(anchor, candidate), (candidate, anchor)] if symmetric else [(anchor, candidate)]
        for a, b in directions:
            loss, hits = contrastive_loss(cosine_logits(views[a], candidates[b], temperature), positive)
            total = total + loss / len(directions)
            correct = correct + hits.sum()
            anchors += hits.numel()
    return CacrResult(total, torch.as_tensor(correct), anchors)


@register_criterion("xsl_clism", dataclass=XslClismCriterionConfig)
class XslClismCriterion(FairseqCriterion):
    def __init__(self, cfg: XslClismCriterionConfig, task):
        super().__init__(task)
        self.cfg = cfg
        self.head_name = task.cfg.pointer_head_name
        self.eos = task.source_dictionary.eos()
        self.bos = task.source_dictionary.bos()
        if cfg.cacr_temperature <= 0:
            raise InputError(f"--cacr-temperature {cfg.cacr_temperature}: must be positive")
        if cfg.mlm_weight == 0 and task.cfg.mask_prob > 0:
            logger.warning(
                "--mlm-weight 0 but the task still masks %.0f%% of X (--mask-prob); for the paper's "
                "'w/o MLM' ablation pass --mask-prob 0", 100 * task.cfg.mask_prob)

    def pointer_logits(self, model, features, tokens, que):
        """Start and end logits (N x T, fp32) of every [QUE], outside the domain at -inf."""
        rows = que["rows"]
        start, end = model.task_heads[self.head_name](features, features[rows, que["positions"]], rows)
        if self.cfg.pointer_domain == "all":
            domain = tokens.ne(self.padding_idx)
        else:
            domain = segment_mask(tokens, 1, self.eos, self.padding_idx, self.bos)
        outside = ~domain.index_select(0, rows)
        return start.float().masked_fill(outside, float("-inf")), end.float().masked_fill(outside, float("-inf"))

    def segment_means(self, features, tokens, segments):
        return [masked_mean(features, segment_mask(tokens, s, self.eos, self.padding_idx, self.bos)).float()
                for s in segments]

    def encode(self, model, sample):
        """Final-layer features of X, and of the unmasked source when CACR needs them (else None)."""
        if self.cfg.cacr_weight <= 0:
            return model(**sample["net_input"], features_only=True)[0], None
        tokens = sample["net_input"]["src_tokens"]
        source_tokens = sample["source_net_input"]["src_tokens"]
        joint = self.cfg.source_pass_batching == "joint" or (
            self.cfg.source_pass_batching == "auto" and tokens.device.type == "cuda")
        if not joint:
            return (model(**sample["net_input"], features_only=True)[0],
                    model(**sample["source_net_input"], features_only=True)[0])
        stacked, (x_rows, source_rows) = stack_token_batches([tokens, source_tokens], self.padding_idx)
        features = model(stacked, features_only=True)[0]
        return features[x_rows, : tokens.size(1)], features[source_rows, : source_tokens.size(1)]

    def forward(self, model, sample, reduce=True):
        tokens = sample["net_input"]["src_tokens"]
        pairs = tokens.size(0)
        dummy = sample.get(DUMMY_BATCH_KEY, False)
        features, source_features = self.encode(model, sample)
        zero = features.new_zeros((), dtype=torch.float32)

        que = sample["que"]
        num_que = que["rows"].numel()
        start_logits, end_logits = self.pointer_logits(model, features, tokens, que)
        clism_sum = (F.cross_entropy(start_logits, que["answer_starts"], reduction="sum")
                     + F.cross_entropy(end_logits, que["answer_ends"], reduction="sum"))
        start_correct = (start_logits.argmax(-1) == que["answer_starts"]).sum()
        end_correct = (end_logits.argmax(-1) == que["answer_ends"]).sum()

        if self.cfg.cacr_weight > 0:
            masked_source, target = self.segment_means(features, tokens, (0, 1))
            (source,) = self.segment_means(source_features, sample["source_net_input"]["src_tokens"], (0,))
            cacr = cacr_loss(source, masked_source, target, self.cfg.cacr_temperature, self.cfg.cacr_symmetric,
                             share_negatives=not dummy)
            cacr_sum, cacr_correct, cacr_anchors = cacr.loss.sum(), cacr.correct, cacr.anchors
        else:
            cacr_sum, cacr_correct, cacr_anchors = zero, torch.zeros((), dtype=torch.long), 0

        if self.cfg.mlm_weight > 0:
            mlm = masked_lm_loss_from_features(model, features, sample["target"], self.padding_idx)
            mlm_sum, mlm_tokens, mlm_correct = mlm.loss.float(), mlm.num_predicted, mlm.num_correct
        else:
            mlm_sum, mlm_tokens, mlm_correct = zero, torch.zeros((), dtype=torch.long), torch.zeros((), dtype=torch.long)

        # sample size = pairs; each term scaled so that the summed loss / the summed pairs is
        # its own mean over the global batch (a dummy batch counts nothing; its loss is zeroed)
        counts = torch.tensor([pairs, num_que, int(mlm_tokens)], dtype=torch.float64, device=features.device)
        global_pairs, global_que, global_mlm_tokens = sum_across_ranks(counts * (not dummy)).tolist()
        loss = (self.cfg.clism_weight * clism_sum * (global_pairs / max(global_que, 1.0))
                + self.cfg.cacr_weight * cacr_sum
                + self.cfg.mlm_weight * mlm_sum * (global_pairs / max(global_mlm_tokens, 1.0)))
        logging_output = {
            "loss": loss.detach(),
            "clism_loss": clism_sum.detach(),
            "cacr_loss": cacr_sum.detach(),
            "mlm_loss": mlm_sum.detach(),
            "num_que": num_que,
            "start_correct": start_correct,
            "end_correct": end_correct,
            "cacr_correct": cacr_correct,
            "cacr_anchors": cacr_anchors,
            "mlm_tokens": mlm_tokens,
            "mlm_correct": mlm_correct,
            "ntokens": sample["ntokens"],
            "nsentences": pairs,
            "sample_size": pairs,
        }
        return loss, pairs, logging_output

    @staticmethod
    def reduce_metrics(logging_outputs) -> None:
        def total(key):
            return float(sum(log.get(key, 0) for log in logging_outputs))

        pairs, num_que = max(total("sample_size"), 1.0), max(total("num_que"), 1.0)
        mlm_tokens, anchors = max(total("mlm_tokens"), 1.0), max(total("cacr_anchors"), 1.0)
        metrics.log_scalar("loss", total("loss") / pairs, pairs, round=4)
        metrics.log_scalar("clism_loss", total("clism_loss") / num_que, num_que, round=4)
        metrics.log_scalar("start_acc", 100.0 * total("start_correct") / num_que, num_que, round=2)
        metrics.log_scalar("end_acc", 100.0 * total("end_correct") / num_que, num_que, round=2)
        metrics.log_scalar("cacr_loss", total("cacr_loss") / pairs, pairs, round=4)
        metrics.log_scalar("cacr_acc", 100.0 * total("cacr_correct") / anchors, anchors, round=2)
        metrics.log_scalar("mlm_loss", total("mlm_loss") / mlm_tokens / math.log(2), mlm_tokens, round=3)
        metrics.log_scalar("mlm_acc", 100.0 * total("mlm_correct") / mlm_tokens, mlm_tokens, round=2)

    @staticmethod
    def logging_outputs_can_be_summed() -> bool:
        return True
