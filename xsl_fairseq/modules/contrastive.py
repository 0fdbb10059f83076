"""Contrastive losses shared by CACR (CLISM) and ML-CTL: cross-rank gather and sum, InfoNCE, CZ-NCE.

Conventions:
* Logits are cosine similarities divided by a temperature, computed in fp32 even when
  the model runs in fp16/bf16 (a saturated softmax in half precision loses the
  gradient of the positive).
* Losses are returned per anchor, so criterions can sum them (fairseq's sum-reduced
  convention) and choose their own sample size.
* Under data parallelism every rank calls :func:`gather_across_ranks` and
  :func:`sum_across_ranks` on every step, dummy and empty batches included, or the ranks
  deadlock. A gathered tensor must also stay in the graph of every rank's loss (a dummy
  batch's too): its backward is an all-reduce that the other ranks wait for.
* A rank's dummy batch (fairseq's stand-in when its shard has run out; the trainer zeroes its
  loss) is marked with :data:`DUMMY_BATCH_KEY` by the task's ``train_step``: its rows are no
  negatives of the other ranks and its counts are no part of the global normalisers.
"""
from typing import Optional, Tuple

import torch
import torch.distributed as dist
import torch.nn.functional as F

CONTRASTIVE_LOSSES = ("infonce", "cz_nce")
DUMMY_BATCH_KEY = "exclude_from_negatives"  # sample key set by the tasks' train_step on dummy batches


def _data_parallel_group():
    if not (dist.is_available() and dist.is_initialized()):
        return None
    from fairseq.distributed import utils as distributed_utils

    return distributed_utils.get_data_parallel_group()


class _AllGatherWithGradient(torch.autograd.Function):
    """all_gather whose backward hands every rank the gradient of its own rows, summed
    over the ranks that used them: the exact gradient of the sum of all ranks' losses."""

    @staticmethod
    def forward(ctx, tensor, group):
        ctx.group = group
        ctx.rank = dist.get_rank(group)
        slots = [torch.empty_like(tensor) for _ in range(dist.get_world_size(group))]
        dist.all_gather(slots, tensor.contiguous(), group=group)
        return torch.stack(slots)

    @staticmethod
    def backward(ctx, grad):
        grad = grad.contiguous()
        dist.all_reduce(grad, group=ctx.group)
        return grad[ctx.rank], None


def gather_across_ranks(local: torch.Tensor, group=None) -> Tuple[torch.Tensor, int]:
    """Rows of ``local`` (n_r x d, n_r may differ per rank, 0 allowed) from every rank.

    Returns the concatenation in rank order and the index of this rank's first row.
    Without an initialised process group (single process), ``local`` itself.
    """
    group = group if group is not None else _data_parallel_group()
    if group is None or dist.get_world_size(group) == 1:
        return local, 0
    world, rank = dist.get_world_size(group), dist.get_rank(group)
    count = torch.tensor([local.size(0)], device=local.device, dtype=torch.long)
    counts = [torch.zeros_like(count) for _ in range(world)]
    dist.all_gather(counts, count, group=group)
    counts = [int(c) for c in counts]
    longest = max(max(counts), 1)
    padded = F.pad(local, (0, 0, 0, longest - local.size(0)))
    gathered = _AllGatherWithGradient.apply(padded, group)  # world x longest x d
    rows = torch.cat([gathered[r, : counts[r]] for r in range(world)], dim=0)
    return rows, sum(counts[:rank])


def sum_across_ranks(values: torch.Tensor, group=None) -> torch.Tensor:
    """``values`` summed over the data-parallel ranks, without gradient: the global counts
    (pairs, queries, masked tokens) that a term is averaged over, so that fairseq's division
    of the summed losses by the summed sample sizes gives the mean over the global batch.
    Without an initialised process group (single process), a copy of ``values``."""
    group = group if group is not None else _data_parallel_group()
    values = values.detach().clone()
    if group is not None and dist.get_world_size(group) > 1:
        dist.all_reduce(values, group=group)
    return values


def cosine_logits(queries: torch.Tensor, keys: torch.Tensor, temperature: float) -> torch.Tensor:
    """cos(q_i, k_j) / temperature for every pair, in fp32 (n_q x n_k).

    Autocast is switched off here: under ``--amp`` it would run the product in half
    precision again, and a logit of 20 carries only about 0.01 (fp16) or 0.1 (bf16) there.
    """
    with torch.autocast(device_type=queries.device.type, enabled=False):
        return F.normalize(queries.float(), dim=-1) @ F.normalize(keys.float(), dim=-1).t() / temperature


def contrastive_loss(
    logits: torch.Tensor,
    positive: torch.Tensor,
    excluded: Optional[torch.Tensor] = None,
    kind: str = "infonce",
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Per-anchor loss and retrieval hit (argmax == positive) for a logit matrix.

    ``logits`` is anchors x candidates, ``positive`` the candidate index of each anchor's
    positive, ``excluded`` (same shape, bool) marks candidates that are neither positive
    nor negative (an anchor itself when anchors are also candidates). Negatives are all
    other candidates.

    * ``infonce``: ``-log(e^pos / (e^pos + sum e^neg))``, bounded below by 0.
    * ``cz_nce`` (ML-CTL's cross-zero NCE): ``logsumexp(neg) - pos``; the positive is not
      in the denominator, so the loss crosses zero and its gradient never saturates.
    """
    if kind not in CONTRASTIVE_LOSSES:
        raise ValueError(f"unknown contrastive loss {kind!r}; choose from {CONTRASTIVE_LOSSES}")
    logits = logits.float()
    is_positive = F.one_hot(positive, logits.size(1)).bool()
    candidates = ~excluded if excluded is not None else torch.ones_like(is_positive)
    positive_logit = logits.gather(1, positive.unsqueeze(1)).squeeze(1)
    negatives = logits.masked_fill(~(candidates & ~is_positive), float("-inf"))
    negative_lse = torch.logsumexp(negatives, dim=1)
    if kind == "infonce":
        loss = torch.logaddexp(positive_logit, negative_lse) - positive_logit
    else:
        loss = negative_lse - positive_logit
    hits = logits.masked_fill(~candidates, float("-inf")).argmax(dim=1).eq(positive)
    return loss, hits
