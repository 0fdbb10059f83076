"""``xsl_mlctl``: ML-CTL multi-level contrastive alignment with InfoNCE or CZ-NCE, plus MLM.

For a batch of n word-positioned samples (x_i, y_i) (task ``xsl_mlctl``):

* x, y and their masked copies (when MLM is on) go through the encoder in one call, stacked
  (one set of kernel launches instead of three, which a GPU running a small model feels;
  the same arithmetic on CPU); each side's vector is the MLP (:class:`MlctlProjectionHead`, a task
  head of the model) over the avg-first-last sentence vector, the word vector, or both
  concatenated (``--levels sentence|word|both``; ML-CTL = ``both``);
* logits are cosine / ``--contrastive-temperature`` (0.07, the official code's value), in fp32;
* anchor x_i has positive y_i, anchor y_i has positive x_i; the negatives are the other
  2N-2 items of the **global** batch (both languages; N = samples on all data-parallel
  ranks, gathered with gradients by :func:`gather_across_ranks` on every step, dummy
  batches included);
* ``--contrastive-loss cz_nce`` (default): ``logsumexp(negatives) - positive``, which can be
  negative; ``infonce``: ``-log softmax`` of the positive among positive + negatives;
* symmetric by default (2n anchors, the poster's loss); ``--one-directional`` keeps only
  the x -> y anchors, as the official code does;
* total = contrastive mean over anchors + ``--mlm-weight`` (0.1) x MLM, where MLM is the mean
  of the per-token losses of the x side and of the y side (masked copies from the task).

Samples cut from the same sentence pair are neither positives nor negatives of each other
(their sentence vectors are identical, so they would be false negatives at the sentence
level); ``--keep-same-pair-negatives`` treats them as negatives, as the official code does
implicitly. An anchor left without any negative contributes nothing and is not counted.

Sample size and scaling: fairseq divides the summed loss by the summed sample size (over
ranks and accumulated batches). The sample size is the number of anchors A (2n, or n
one-directional); the returned loss is ``sum of anchor losses + mlm_weight * A * MLM``, with
A and MLM's per-side token counts summed over the data-parallel ranks (an all-reduce of
three numbers per step), so one update is exactly the official ``mean contrastive + 0.1 *
MLM`` over the global batch on any number of ranks (``tests/test_data_parallel.py``), and
the anchor-weighted average of it over ``--update-freq`` micro-batches. A dummy batch (a
rank whose shard has run out; marked by the task) lends no rows to the other ranks'
negatives and no counts to the normalisers.

Logging (all summable scalars, the same keys on every rank): ``loss`` (total per anchor),
``contrastive_loss`` (per anchor), ``mlm_loss`` (per masked token, both sides pooled),
``mlm_acc`` (%), ``retrieval_acc`` (% of anchors whose nearest candidate in the global
batch is their positive), ``positive_cos`` (mean cosine of the positive pairs). All in
nats and unscaled: CZ-NCE is legitimately negative, so nothing is divided by ln 2.
"""
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from fairseq.criterions import FairseqCriterion, register_criterion
from fairseq.dataclass import ChoiceEnum, FairseqDataclass
from fairseq.logging import metrics

from preprocess import InputError

from ..modules.contrastive import (DUMMY_BATCH_KEY, contrastive_loss, cosine_logits, gather_across_ranks,
                                   sum_across_ranks)
from ..modules.mlctl import MLCTL_HEAD, MLCTL_LEVELS, level_vectors, projection_input_dim
from ..modules.mlm_loss import masked_lm_loss_from_features
from ..modules.pooling import stack_token_batches


@dataclass
class XslMlctlCriterionConfig(FairseqDataclass):
    levels: ChoiceEnum(list(MLCTL_LEVELS)) = field(
        default="both", metadata={"help": "vector contrasted: sentence (info-snt / CZ-snt), word, or both = "
                                          "ML-CTL's [sentence; word]"})
    contrastive_loss: ChoiceEnum(["infonce", "cz_nce"]) = field(
        default="cz_nce", metadata={"help": "cz_nce = logsumexp(negatives) - positive (ML-CTL); infonce = "
                                            "-log softmax of the positive"})
    contrastive_temperature: float = field(default=0.07, metadata={"help": "cosine similarity is divided by this"})
    mlm_weight: float = field(default=0.1, metadata={"help": "weight alpha of the MLM term (mean of both sides)"})
    one_directional: bool = field(
        default=False, metadata={"help": "only x -> y anchors (the official code); default: symmetric, "
                                         "x -> y and y -> x"})
    keep_same_pair_negatives: bool = field(
        default=False, metadata={"help": "count samples of the same sentence pair as negatives of each other"})


@register_criterion("xsl_mlctl", dataclass=XslMlctlCriterionConfig)
class XslMlctlCriterion(FairseqCriterion):
    def __init__(self, cfg: XslMlctlCriterionConfig, task):
        super().__init__(task)
        self.levels = cfg.levels
        self.kind = cfg.contrastive_loss
        self.temperature = cfg.contrastive_temperature
        self.mlm_weight = cfg.mlm_weight
        self.symmetric = not cfg.one_directional
        self.keep_same_pair_negatives = cfg.keep_same_pair_negatives
        if self.temperature <= 0:
            raise InputError(f"--contrastive-temperature {self.temperature}: must be positive")
        task_levels = getattr(getattr(task, "cfg", None), "levels", self.levels)
        if task_levels != self.levels:
            raise ValueError(f"the task built the ML-CTL head for levels={task_levels!r} but the criterion "
                             f"contrasts levels={self.levels!r}")

    def _encode(self, model, sample):
        """One encoder call over x, y and (with MLM) their masked copies, stacked.

        Returns the ML-CTL head's vectors of the x rows then the y rows (2n x d), and the
        final-layer features and targets of the masked x and masked y rows (or None).
        """
        sides = [sample["x"]["src_tokens"], sample["y"]["src_tokens"]]
        if self.mlm_weight > 0:
            if "x_mlm" not in sample:
                raise ValueError("--mlm-weight > 0 needs masked inputs: set the task's --mask-prob > 0")
            sides += [sample[side]["net_input"]["src_tokens"] for side in ("x_mlm", "y_mlm")]
        tokens, rows = stack_token_batches(sides, self.padding_idx)
        features, extra = model(tokens, features_only=True, return_all_hiddens=True)
        contrastive_rows = slice(0, rows[1].stop)
        hidden_states = [state.transpose(0, 1)[contrastive_rows] for state in extra["inner_states"]]
        spans = torch.cat([sample["x_span"], sample["y_span"]])
        pooled = level_vectors(hidden_states, tokens[contrastive_rows], spans, self.levels, self.padding_idx)
        head = model.task_heads[MLCTL_HEAD]
        if head.input_dim != pooled.size(-1):
            raise ValueError(f"ML-CTL head takes width {head.input_dim}, levels={self.levels!r} gives "
                             f"{pooled.size(-1)} (expected {projection_input_dim(self.levels, hidden_states[-1].size(-1))})")
        masked = None
        if self.mlm_weight > 0:
            masked = [(features[row, : side.size(1)], sample[name]["target"])
                      for row, side, name in zip(rows[2:], sides[2:], ("x_mlm", "y_mlm"))]
        return head(pooled), masked

    def contrastive_terms(self, x_vectors, y_vectors, pair_id, share_negatives=True):
        """Per-anchor losses, hits and positive cosines of the local anchors against the global batch.

        Collective (every rank, every step). ``share_negatives=False`` (a dummy batch) takes part
        in the gathers without contributing rows."""
        shared = slice(None) if share_negatives else slice(0, 0)
        global_x, offset = gather_across_ranks(x_vectors[shared])
        global_y, _ = gather_across_ranks(y_vectors[shared])
        global_pairs, _ = gather_across_ranks(pair_id.unsqueeze(1)[shared])
        if not share_negatives:
            # The trainer zeroes this loss; its own rows come after the other ranks' only so that
            # the gathers stay in the graph: their backward is an all-reduce the other ranks wait for.
            offset = global_x.size(0)
            global_x, global_y = torch.cat([global_x, x_vectors]), torch.cat([global_y, y_vectors])
            global_pairs = torch.cat([global_pairs, pair_id.unsqueeze(1)])
        n_local, n_global = x_vectors.size(0), global_x.size(0)
        if n_global == 0:  # every rank's batch is empty: no anchor, no candidate
            nothing = x_vectors.new_zeros(0, dtype=torch.float32)
            return nothing, nothing.bool(), nothing, nothing.bool()
        local = torch.arange(n_local, device=x_vectors.device) + offset
        anchors, self_index, positive = x_vectors, local, local + n_global
        if self.symmetric:
            anchors = torch.cat([x_vectors, y_vectors])
            self_index = torch.cat([local, local + n_global])
            positive = torch.cat([local + n_global, local])
        candidates = torch.cat([global_x, global_y])
        logits = cosine_logits(anchors, candidates, self.temperature)
        is_positive = F.one_hot(positive, 2 * n_global).bool()
        excluded = F.one_hot(self_index, 2 * n_global).bool()
        if not self.keep_same_pair_negatives:
            candidate_pairs = global_pairs.squeeze(1).repeat(2)
            anchor_pairs = pair_id.repeat(2 if self.symmetric else 1)
            excluded |= anchor_pairs.unsqueeze(1).eq(candidate_pairs.unsqueeze(0)) & ~is_positive
        has_negative = (~excluded & ~is_positive).any(dim=1)
        loss, hits = contrastive_loss(logits, positive, excluded, kind=self.kind)
        loss = torch.where(has_negative, loss, torch.zeros_like(loss))
        positive_cos = logits.gather(1, positive.unsqueeze(1)).squeeze(1) * self.temperature
        return loss, hits & has_negative, positive_cos.masked_fill(~has_negative, 0.0), has_negative

    def forward(self, model, sample, reduce=True):
        vectors, masked_sides = self._encode(model, sample)
        n = sample["x"]["src_tokens"].size(0)
        dummy = sample.get(DUMMY_BATCH_KEY, False)
        losses, hits, positive_cos, valid = self.contrastive_terms(vectors[:n], vectors[n:], sample["pair_id"],
                                                                   share_negatives=not dummy)
        anchors = valid.sum()
        # Keeps every parameter of the pass in the graph when no anchor counts (e.g. n = 0).
        contrastive = losses.sum() + 0.0 * vectors.sum()

        mlm_loss_sum = torch.zeros((), dtype=torch.float32, device=vectors.device)
        mlm_tokens = torch.zeros((), dtype=torch.long, device=vectors.device)
        mlm_correct = torch.zeros((), dtype=torch.long, device=vectors.device)
        side_losses, side_tokens = [], []
        for features, target in masked_sides or ():
            mlm = masked_lm_loss_from_features(model, features, target, self.padding_idx)
            side_losses.append(mlm.loss.float())
            side_tokens.append(mlm.num_predicted)
            mlm_loss_sum = mlm_loss_sum + mlm.loss.float()
            mlm_tokens = mlm_tokens + mlm.num_predicted
            mlm_correct = mlm_correct + mlm.num_correct
        # anchors and each side's masked tokens over all ranks: the MLM term is the mean of the
        # two sides' per-token means over the global batch, weighted by the global anchor count
        counts = torch.stack([anchors, *side_tokens]).double() * (not dummy)
        global_anchors, *global_side_tokens = sum_across_ranks(counts).tolist()
        mlm_mean = torch.zeros((), dtype=torch.float32, device=vectors.device)
        for side_loss, tokens in zip(side_losses, global_side_tokens):
            mlm_mean = mlm_mean + 0.5 * side_loss / max(tokens, 1.0)
        loss = contrastive + self.mlm_weight * global_anchors * mlm_mean

        logging_output = {
            "loss": loss.detach(),
            "contrastive_loss": contrastive.detach(),
            "mlm_loss": mlm_loss_sum.detach(),
            "mlm_tokens": mlm_tokens,
            "mlm_correct": mlm_correct,
            "retrieval_correct": hits.sum(),
            "positive_cos": positive_cos.sum().detach(),
            "ntokens": sample["ntokens"],
            "nsentences": n,
            "sample_size": anchors,
        }
        return loss, anchors, logging_output

    @staticmethod
    def reduce_metrics(logging_outputs) -> None:
        def total(key):
            return float(sum(log.get(key, 0) for log in logging_outputs))

        anchors = max(total("sample_size"), 1.0)
        mlm_tokens = max(total("mlm_tokens"), 1.0)
        metrics.log_scalar("loss", total("loss") / anchors, anchors, round=4)
        metrics.log_scalar("contrastive_loss", total("contrastive_loss") / anchors, anchors, round=4)
        metrics.log_scalar("retrieval_acc", 100.0 * total("retrieval_correct") / anchors, anchors, round=2)
        metrics.log_scalar("positive_cos", total("positive_cos") / anchors, anchors, round=4)
        metrics.log_scalar("mlm_loss", total("mlm_loss") / mlm_tokens, mlm_tokens, round=4)
        metrics.log_scalar("mlm_acc", 100.0 * total("mlm_correct") / mlm_tokens, mlm_tokens, round=2)

    @staticmethod
    def logging_outputs_can_be_summed() -> bool:
        return True
