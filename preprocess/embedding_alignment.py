"""Unsupervised alignment of two static embedding spaces, after MUSE (Conneau et al., *Word Translation
Without Parallel Data*, ICLR 2018), as TreLM's official code runs it (agcbi2017/TreLM ``trelm/MUSE``,
``unsupervised.py`` with a frozen target; notes §4).

* **Mapping** ``W`` (d x d, no bias, identity init), kept orthogonal after every step with
  ``W <- (1 + beta) W - beta W W^T W`` (beta 0.001).
* **Discriminator**: dropout 0.1 on its input -> Linear(d, h) -> LeakyReLU(0.2) -> Linear(h, h) ->
  LeakyReLU(0.2) -> Linear(h, 1) -> sigmoid (h = 2048), BCE with label smoothing 0.1 (mapped source 0.9,
  target 0.1); the mapping is trained against the flipped labels (``dis_lambda`` 1).
* **Schedule**: per iteration ``dis_steps`` (5) discriminator steps, then one mapping step, ``batch_size``
  (32) words per side sampled from the whole vocabularies; SGD lr 0.1 for both; after every epoch the
  mapping lr decays x0.98, and once the selection criterion has dropped below its best a second time it is
  also halved (``lr_shrink`` 0.5) on every further drop; training stops when it falls below ``min_lr``
  (1e-6) or after ``epochs``. The W of the best criterion is kept.
* **Selection criterion** (unsupervised, ``mean_cosine-csls_knn_10-S2T-10000``): the mean cosine between
  the mapped source and its CSLS-nearest target over the ``selection_words`` most frequent source words.
* **Refinement**: ``refinement_iterations`` (5) rounds of orthogonal Procrustes on a CSLS (k = 10)
  source -> target dictionary restricted to the ``dico_max_rank`` (15000) most frequent words of each side;
  a round is kept only if the criterion improves.

The target embedding is frozen, and no embedding is normalised (MUSE's ``--normalize_embeddings ""``).
Everything is seeded (``torch.Generator``), so a run is reproducible.
"""
import logging
import math
from dataclasses import dataclass, field
from typing import List, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

logger = logging.getLogger(__name__)


@dataclass
class AlignmentConfig:
    epochs: int = 50
    epoch_size: int = 1_000_000
    batch_size: int = 32
    dis_steps: int = 5
    dis_hidden: int = 2048
    dis_dropout: float = 0.1
    dis_smooth: float = 0.1
    dis_lambda: float = 1.0
    map_beta: float = 0.001
    lr: float = 0.1
    lr_decay: float = 0.98
    lr_shrink: float = 0.5
    min_lr: float = 1e-6
    csls_k: int = 10
    selection_words: int = 10_000
    refinement_iterations: int = 5
    dico_max_rank: int = 15_000
    seed: int = 1


@dataclass
class AlignmentResult:
    mapping: torch.Tensor  # W, d x d: mapped = source @ W.T
    history: List[dict] = field(default_factory=list)  # one row per adversarial epoch / refinement round
    best_criterion: float = -math.inf


class Discriminator(nn.Module):
    def __init__(self, dim: int, hidden: int, dropout: float):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Dropout(dropout), nn.Linear(dim, hidden), nn.LeakyReLU(0.2),
            nn.Linear(hidden, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, 1),
        )

    def forward(self, x):
        return self.layers(x).squeeze(-1)  # logits; the sigmoid is in the BCE


def _csls_scores_rows(query: torch.Tensor, keys: torch.Tensor, query_mean: torch.Tensor, key_mean: torch.Tensor):
    return 2 * query @ keys.t() - query_mean.unsqueeze(1) - key_mean.unsqueeze(0)


def mean_topk_similarity(query: torch.Tensor, keys: torch.Tensor, k: int, chunk: int = 4096) -> torch.Tensor:
    """Mean cosine of every (unit-norm) query row to its k nearest key rows."""
    k = min(k, keys.size(0))
    out = [(query[i:i + chunk] @ keys.t()).topk(k, dim=1).values.mean(dim=1) for i in range(0, query.size(0), chunk)]
    return torch.cat(out)


def csls_dictionary(mapped_source: torch.Tensor, target: torch.Tensor, k: int, source_rows: torch.Tensor,
                    target_limit: Optional[int] = None, chunk: int = 4096) -> torch.Tensor:
    """Pairs (source row, CSLS-nearest target row) for the given ``source_rows`` (source -> target);
    ``target_limit`` restricts the candidates to the first rows of ``target`` (ordered by frequency)."""
    source = F.normalize(mapped_source, dim=1)
    keys = F.normalize(target if target_limit is None else target[:target_limit], dim=1)
    source_mean = mean_topk_similarity(source, keys, k)  # r_T(Ws), for every source word
    key_mean = mean_topk_similarity(keys, source, k)  # r_S(t)
    best = []
    for i in range(0, source_rows.numel(), chunk):
        rows = source_rows[i:i + chunk]
        best.append(_csls_scores_rows(source[rows], keys, source_mean[rows], key_mean).argmax(dim=1))
    return torch.stack([source_rows, torch.cat(best)], dim=1)


def selection_criterion(mapped_source, target, source_by_frequency, cfg: AlignmentConfig):
    """MUSE's ``mean_cosine-csls_knn_{k}-S2T-{selection_words}``, and how many distinct target words its
    dictionary uses (a handful means a degenerate, hub-dominated space, whatever the mean cosine says)."""
    rows = source_by_frequency[:cfg.selection_words]
    pairs = csls_dictionary(mapped_source, target, cfg.csls_k, rows)
    criterion = float(F.cosine_similarity(mapped_source[pairs[:, 0]], target[pairs[:, 1]], dim=1).mean())
    return criterion, int(pairs[:, 1].unique().numel())


NORMALIZATION_STEPS = ("center", "renorm")


def normalization_steps(steps: str) -> List[str]:
    """``"renorm,center"`` -> its steps; an unknown step is a ValueError (checked before any work)."""
    parsed = [s.strip() for s in steps.split(",") if s.strip()]
    unknown = [s for s in parsed if s not in NORMALIZATION_STEPS]
    if unknown:
        raise ValueError(f"unknown normalisation step {unknown[0]!r} ({', '.join(NORMALIZATION_STEPS)})")
    return parsed


def normalize_embeddings(vectors: torch.Tensor, steps: str) -> torch.Tensor:
    """MUSE's ``--normalize_embeddings``: comma-separated ``center`` (subtract the mean) and ``renorm``
    (unit length) steps, applied in order ("" = none, the official setting)."""
    for step in normalization_steps(steps):
        if step == "center":
            vectors = vectors - vectors.mean(dim=0, keepdim=True)
        else:  # renorm
            vectors = F.normalize(vectors, dim=1)
    return vectors


def procrustes(source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The orthogonal W minimising ||source @ W.T - target|| (W = U V^T of svd(target^T source))."""
    u, _, vh = torch.linalg.svd(target.t() @ source)
    return u @ vh


def align_embeddings(source: torch.Tensor, target: torch.Tensor, source_by_frequency: torch.Tensor,
                     target_by_frequency: torch.Tensor, cfg: AlignmentConfig) -> AlignmentResult:
    """Map ``source`` (n x d) onto the frozen ``target`` (m x d); ``*_by_frequency``: row ids, most frequent first."""
    if source.size(1) != target.size(1):
        raise ValueError(f"embedding sizes differ: source {source.size(1)}, target {target.size(1)}")
    source, target = source.float(), target.float()
    dim = source.size(1)
    generator = torch.Generator().manual_seed(cfg.seed)
    torch.manual_seed(cfg.seed)  # discriminator init and dropout
    mapping = nn.Linear(dim, dim, bias=False)
    with torch.no_grad():
        mapping.weight.copy_(torch.eye(dim))
    discriminator = Discriminator(dim, cfg.dis_hidden, cfg.dis_dropout)
    map_optimizer = torch.optim.SGD(mapping.parameters(), lr=cfg.lr)
    dis_optimizer = torch.optim.SGD(discriminator.parameters(), lr=cfg.lr)
    bs = cfg.batch_size
    labels = torch.cat([torch.full((bs,), 1 - cfg.dis_smooth), torch.full((bs,), cfg.dis_smooth)])

    def batch():
        src_ids = torch.randint(source.size(0), (bs,), generator=generator)
        tgt_ids = torch.randint(target.size(0), (bs,), generator=generator)
        return source[src_ids], target[tgt_ids]

    result = AlignmentResult(mapping=mapping.weight.detach().clone())
    seen_drop = False
    for epoch in range(1, cfg.epochs + 1):
        dis_losses = []
        for _ in range(0, cfg.epoch_size, bs):
            discriminator.train()
            for _ in range(cfg.dis_steps):
                src, tgt = batch()
                with torch.no_grad():
                    mapped = mapping(src)
                loss = F.binary_cross_entropy_with_logits(discriminator(torch.cat([mapped, tgt])), labels)
                dis_optimizer.zero_grad()
                loss.backward()
                dis_optimizer.step()
                dis_losses.append(loss.item())
            src, tgt = batch()
            discriminator.eval()  # MUSE's mapping step: no discriminator dropout
            logits = discriminator(torch.cat([mapping(src), tgt]))
            loss = cfg.dis_lambda * F.binary_cross_entropy_with_logits(logits, 1 - labels)
            map_optimizer.zero_grad()
            loss.backward()
            map_optimizer.step()
            with torch.no_grad():  # keep W orthogonal
                w = mapping.weight
                w.copy_((1 + cfg.map_beta) * w - cfg.map_beta * w @ w.t() @ w)
        with torch.no_grad():
            criterion, distinct = selection_criterion(mapping(source), target, source_by_frequency, cfg)
        lr = map_optimizer.param_groups[0]["lr"]
        row = {"stage": "adversarial", "epoch": epoch, "criterion": round(criterion, 5), "distinct_targets": distinct,
               "discriminator_loss": round(sum(dis_losses) / max(len(dis_losses), 1), 5), "map_lr": lr}
        result.history.append(row)
        logger.info("adversarial epoch %d: criterion %.5f, discriminator loss %.4f, lr %.5f", epoch, criterion,
                    row["discriminator_loss"], lr)
        if criterion > result.best_criterion:
            result.best_criterion = criterion
            result.mapping = mapping.weight.detach().clone()
        new_lr = max(cfg.min_lr, lr * cfg.lr_decay)
        if criterion < result.best_criterion:
            if seen_drop:
                new_lr *= cfg.lr_shrink
            seen_drop = True
        map_optimizer.param_groups[0]["lr"] = new_lr
        if new_lr < cfg.min_lr:
            logger.info("mapping lr %.2e below %.0e: adversarial training stops", new_lr, cfg.min_lr)
            break

    w = result.mapping
    for iteration in range(1, cfg.refinement_iterations + 1):
        mapped = source @ w.t()
        limit = cfg.dico_max_rank
        rows = source_by_frequency[:limit]
        # candidates: the most frequent target rows (target_by_frequency reorders the target)
        ordered_target = target[target_by_frequency[:limit]]
        pairs = csls_dictionary(mapped, ordered_target, cfg.csls_k, rows)
        candidate = procrustes(source[pairs[:, 0]], ordered_target[pairs[:, 1]])
        criterion, distinct = selection_criterion(source @ candidate.t(), target, source_by_frequency, cfg)
        kept = criterion > result.best_criterion
        result.history.append({"stage": "refinement", "iteration": iteration, "criterion": round(criterion, 5),
                               "distinct_targets": distinct,
                               "dictionary_pairs": int(pairs.size(0)), "kept": kept})
        logger.info("refinement %d: %d dictionary pairs, criterion %.5f (%s)", iteration, pairs.size(0), criterion,
                    "kept" if kept else "not better")
        w = candidate
        if kept:
            result.best_criterion = criterion
            result.mapping = candidate
    return result
