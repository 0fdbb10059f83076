"""SALT self-augmentation math ("Self-Augmentation Improves Zero-Shot Cross-Lingual
Transfer", Wang et al., IJCNLP-AACL 2023, arXiv 2309.10891).

Following the paper's description; details not published. The paper's abstract says
SALT combines code-switching and embedding mixup "with self-augmentation", i.e. the
signal comes from the multilingual PLM itself; its repository holds no code and the
method section could not be read. What follows is the design recommended in
``shared/notes/salt_and_meta_pretraining.md`` (unverified against the paper):

* **Positions** (:func:`choose_positions`): each real token (never padding, ``<s>``,
  ``</s>``, ``<unk>``, ``<mask>`` or appended special symbols) is code-switched with
  probability ``cs_prob`` and, otherwise, mixed with probability ``mix_prob``; the two
  sets are disjoint so one augmented copy carries both.
* **Substitutes** (:func:`topk_substitutes`): the MLM head's top-k tokens at those
  positions, predicted with every chosen position replaced by ``<mask>`` in one pass;
  the original token and special tokens are excluded; ``p̂`` is the softmax over the k
  kept logits (the top-k probabilities renormalised). :func:`random_substitutes` is the
  ablation: k tokens drawn uniformly from the allowed vocabulary, equal weights.
* **Code-switching** (:func:`pick_substitute`): one of the k, sampled from ``p̂`` or the argmax.
* **Embedding mixup** (:func:`mix_embeddings`): ``e' = λ E[x] + (1 - λ) Σ_k p̂_k E[w_k]``,
  λ fixed or drawn per token from Beta(α, α) (:func:`mix_lambdas`).
* **Consistency** (:func:`consistency_kl`): ``KL(p_clean.detach() || p_aug)`` summed
  over rows (fairseq's sum-reduced convention), in fp32.
* **Randomness** (:func:`example_draws`): in training, every random number of an example
  (positions, substitute draw, λ, random substitutes) comes from a generator of its own,
  seeded by (update seed, example id), so an example is augmented the same in whatever batch
  and on whatever data-parallel rank it lands. Drawing from torch's global RNG instead, which
  fairseq seeds with seed + update on every rank alike, gave every rank's batch of one shape
  the same positions, and made the augmentation depend on how the batch was split.
"""
from typing import NamedTuple, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F


def special_token_ids(dictionary) -> torch.Tensor:
    """Ids that are never augmented and never chosen as substitutes: fairseq's specials
    (``<s> <pad> </s> <unk>``), ``<mask>``, symbols appended after ``<mask>`` (tasks' extra
    special symbols such as ``[QUE]``) and ``madeupword`` fillers."""
    ids = set(range(dictionary.nspecial))
    mask = dictionary.index("<mask>")
    if mask != dictionary.unk():
        ids.update(range(mask, len(dictionary)))
    ids.update(i for i, symbol in enumerate(dictionary.symbols) if symbol.startswith("madeupword"))
    return torch.tensor(sorted(ids), dtype=torch.long)


def augmentable_positions(tokens: torch.Tensor, special_ids: torch.Tensor) -> torch.Tensor:
    """Boolean B x T mask of the tokens that may be augmented (not special, not padding;
    the padding id is one of ``special_ids``)."""
    return ~torch.isin(tokens, special_ids.to(tokens.device))


class ChosenPositions(NamedTuple):
    code_switch: torch.Tensor  # B x T bool
    mixup: torch.Tensor  # B x T bool, disjoint from code_switch

    @property
    def any(self) -> torch.Tensor:
        return self.code_switch | self.mixup


class ExampleDraws(NamedTuple):
    """Random numbers for every token of a batch (B x T, drawn per example by :func:`example_draws`)."""
    position: torch.Tensor  # uniform: which augmentation the token gets (choose_positions)
    pick: torch.Tensor  # uniform: its code-switch substitute (inverse CDF of the top-k weights)
    lambdas: torch.Tensor  # its mixup weight λ
    random: torch.Tensor  # B x T x k uniform: its random substitutes (the ablation)


def example_draws(tokens: torch.Tensor, padding_idx: int, example_ids: torch.Tensor, seed: int, k: int,
                  mix_lambda: float, mix_alpha: float) -> ExampleDraws:
    """The random numbers of each row of ``tokens`` from a generator seeded by (``seed``, the
    row's example id), one set per non-pad token in order: independent of the batch the example
    is in, its padding and its data-parallel rank."""
    real = tokens.ne(padding_idx).cpu().numpy()
    rows, width = real.shape
    position, pick = np.zeros((rows, width)), np.zeros((rows, width))
    lambdas, random = np.full((rows, width), float(mix_lambda)), np.zeros((rows, width, k))
    for row, example in enumerate(example_ids.tolist()):
        generator = np.random.default_rng([int(seed), int(example)])
        columns = np.flatnonzero(real[row])
        position[row, columns] = generator.random(columns.size)
        pick[row, columns] = generator.random(columns.size)
        random[row, columns] = generator.random((columns.size, k))
        if mix_alpha > 0:
            lambdas[row, columns] = generator.beta(mix_alpha, mix_alpha, columns.size)
    return ExampleDraws(torch.from_numpy(position).to(tokens.device),  # fp64: u < 1 stays true for cs_prob 1
                        *(torch.from_numpy(a).float().to(tokens.device) for a in (pick, lambdas, random)))


def choose_positions(candidates: torch.Tensor, cs_prob: float, mix_prob: float,
                     generator: Optional[torch.Generator] = None, draw: Optional[torch.Tensor] = None
                     ) -> ChosenPositions:
    """Disjoint code-switch / mixup positions among ``candidates`` (one uniform draw per
    token, ``draw`` or from ``generator``: ``u < cs_prob`` code-switches, ``cs_prob <= u <
    cs_prob + mix_prob`` mixes)."""
    if cs_prob < 0 or mix_prob < 0 or cs_prob + mix_prob > 1:
        raise ValueError(f"need 0 <= cs_prob, mix_prob and cs_prob + mix_prob <= 1 (got {cs_prob}, {mix_prob})")
    if draw is None:
        draw = torch.rand(candidates.shape, generator=generator, device="cpu").to(candidates.device)
    code_switch = candidates & draw.lt(cs_prob)
    mixup = candidates & draw.ge(cs_prob) & draw.lt(cs_prob + mix_prob)
    return ChosenPositions(code_switch, mixup)


class Substitutes(NamedTuple):
    ids: torch.Tensor  # N x k token ids
    probs: torch.Tensor  # N x k, rows sum to 1 (fp32)


def vocabulary_exclusion(vocab_size: int, special_ids: torch.Tensor, device=None) -> torch.Tensor:
    """Boolean (V) mask of the ids never used as substitutes."""
    excluded = torch.zeros(vocab_size, dtype=torch.bool, device=device)
    excluded[special_ids[special_ids < vocab_size].to(excluded.device)] = True
    return excluded


def topk_substitutes(mlm_logits: torch.Tensor, original: torch.Tensor, k: int,
                     excluded_vocab: torch.Tensor) -> Substitutes:
    """The k most likely tokens of each row of ``mlm_logits`` (N x V), the row's
    ``original`` token and ``excluded_vocab`` (V, bool) left out; weights are the softmax of
    the k kept logits (= the top-k probabilities renormalised)."""
    # one N x V copy (the rest in place): on a 90k vocabulary these passes cost as much as the top-k
    logits = mlm_logits.float().masked_fill(excluded_vocab.to(mlm_logits.device), float("-inf"))
    logits.scatter_(1, original.unsqueeze(1), float("-inf"))
    allowed = int((~excluded_vocab).sum()) - 1  # the original may be an allowed id
    if k < 1 or k > allowed:
        raise ValueError(f"top-k of {k} substitutes, but only {allowed} vocabulary entries are allowed")
    top_logits, top_ids = logits.topk(k, dim=-1)
    return Substitutes(top_ids, F.softmax(top_logits, dim=-1))


def random_substitutes(original: torch.Tensor, k: int, excluded_vocab: torch.Tensor,
                       generator: Optional[torch.Generator] = None, uniforms: Optional[torch.Tensor] = None
                       ) -> Substitutes:
    """``--salt-random-substitutes``: k ids per row drawn uniformly (with replacement) from
    the allowed vocabulary minus the row's original token, equal weights (``uniforms``: N x k
    draws in [0, 1) to use instead of ``generator``'s)."""
    allowed_ids = (~excluded_vocab).nonzero().squeeze(1).to(original.device)  # sorted
    if allowed_ids.numel() < 2:
        raise ValueError("random substitutes need at least two allowed vocabulary entries")
    # slot of the original in allowed_ids (== its count if absent); draw from the others
    slot = torch.searchsorted(allowed_ids, original)
    is_allowed = slot.lt(allowed_ids.numel()) & allowed_ids[slot.clamp(max=allowed_ids.numel() - 1)].eq(original)
    choices = allowed_ids.numel() - is_allowed.long()  # N
    draw = uniforms if uniforms is not None else torch.rand((original.numel(), k), generator=generator, device="cpu")
    index = (draw.to(original.device) * choices.unsqueeze(1)).long().clamp(max=allowed_ids.numel() - 1)
    index = index + (is_allowed.unsqueeze(1) & index.ge(slot.unsqueeze(1))).long()
    probs = torch.full((original.numel(), k), 1.0 / k, device=original.device)
    return Substitutes(allowed_ids[index], probs)


def pick_substitute(substitutes: Substitutes, sample: bool = True,
                    generator: Optional[torch.Generator] = None, uniforms: Optional[torch.Tensor] = None
                    ) -> torch.Tensor:
    """One id per row: drawn from the top-k weights (``sample``; by inverse CDF of ``uniforms``,
    one per row, when given) or their argmax."""
    if substitutes.ids.size(0) == 0:
        return substitutes.ids[:, 0]
    if sample and uniforms is not None:
        below = substitutes.probs.cumsum(dim=-1) <= uniforms.to(substitutes.probs.device).unsqueeze(1)
        column = below.sum(dim=-1, keepdim=True).clamp(max=substitutes.ids.size(1) - 1)
    elif sample:
        column = torch.multinomial(substitutes.probs.cpu(), 1, generator=generator).to(substitutes.ids.device)
    else:
        column = substitutes.probs.argmax(dim=-1, keepdim=True)
    return substitutes.ids.gather(1, column).squeeze(1)


def mix_lambdas(n: int, mix_lambda: float, mix_alpha: float, device=None) -> torch.Tensor:
    """λ per mixed token: the fixed ``mix_lambda``, or Beta(α, α) draws (torch's global
    RNG, which fairseq seeds per update) when ``mix_alpha`` > 0."""
    if mix_alpha > 0:
        alpha = torch.tensor(float(mix_alpha))
        return torch.distributions.Beta(alpha, alpha).sample((n,)).to(device)
    return torch.full((n,), float(mix_lambda), device=device)


def mix_embeddings(original: torch.Tensor, substitute_embeddings: torch.Tensor, probs: torch.Tensor,
                   lambdas: torch.Tensor) -> torch.Tensor:
    """``λ e + (1 - λ) Σ_k p̂_k e_k`` for N tokens: ``original`` N x C, ``substitute_embeddings``
    N x k x C, ``probs`` N x k, ``lambdas`` N."""
    expected = torch.einsum("nk,nkc->nc", probs.to(original.dtype), substitute_embeddings)
    lambdas = lambdas.to(original.dtype).unsqueeze(1)
    return lambdas * original + (1 - lambdas) * expected


def consistency_kl(clean_logits: torch.Tensor, augmented_logits: torch.Tensor) -> torch.Tensor:
    """``Σ_rows KL(softmax(clean).detach() || softmax(augmented))`` in fp32 (the clean
    prediction is the teacher: no gradient flows into it)."""
    teacher = F.log_softmax(clean_logits.detach().float(), dim=-1)
    student = F.log_softmax(augmented_logits.float(), dim=-1)
    return F.kl_div(student, teacher, reduction="sum", log_target=True)


def predict_substitutes(model, tokens, positions, k, excluded_vocab, mask_idx, random=False, dropout=False,
                        draws: Optional[ExampleDraws] = None):
    """Top-k substitutes (or ``random`` ones, from ``draws`` when given) for ``positions``
    (B x T bool) of ``tokens``: the positions are masked together and predicted by ``model``'s
    MLM head in one forward without gradient. Rows follow ``tokens[positions]`` (row-major)."""
    original = tokens[positions]
    if original.numel() == 0:
        empty = original.new_zeros((0, k))
        return Substitutes(empty, empty.float())
    if random:
        return random_substitutes(original, k, excluded_vocab,
                                  uniforms=None if draws is None else draws.random[positions])
    was_training = model.training
    model.train(dropout and was_training)
    try:
        with torch.no_grad():
            masked = tokens.masked_fill(positions, mask_idx)
            logits = model(masked, masked_tokens=positions)[0]  # N x V
    finally:
        model.train(was_training)
    return topk_substitutes(logits, original, k, excluded_vocab)


def build_augmented_input(model, tokens, chosen: ChosenPositions, substitutes: Substitutes,
                          sample_substitute=True, mix_lambda=0.5, mix_alpha=0.0,
                          draws: Optional[ExampleDraws] = None):
    """Code-switched tokens and (when any position is mixed) input embeddings B x T x C.

    ``substitutes`` rows follow ``tokens[chosen.any]``. With ``draws``, the substitute draws
    and λ come from there (``mix_lambda``/``mix_alpha`` were applied when they were drawn)."""
    every = chosen.any
    is_cs = chosen.code_switch[every]  # which substitute rows are code-switch rows
    augmented = tokens.clone()
    if bool(is_cs.any()):
        rows = Substitutes(substitutes.ids[is_cs], substitutes.probs[is_cs])
        uniforms = None if draws is None else draws.pick[chosen.code_switch]
        augmented[chosen.code_switch] = pick_substitute(rows, sample=sample_substitute,
                                                        uniforms=uniforms).to(tokens.dtype)
    if not bool(chosen.mixup.any()):
        return augmented, None
    embed = model.encoder.sentence_encoder.embed_tokens
    embeddings = embed(augmented)
    is_mix = ~is_cs
    ids, probs = substitutes.ids[is_mix], substitutes.probs[is_mix]
    lambdas = (draws.lambdas[chosen.mixup] if draws is not None
               else mix_lambdas(ids.size(0), mix_lambda, mix_alpha, device=tokens.device))
    mixed = mix_embeddings(embeddings[chosen.mixup], embed(ids), probs, lambdas)
    embeddings = embeddings.clone()
    embeddings[chosen.mixup] = mixed.to(embeddings.dtype)
    return augmented, embeddings


__all__: Sequence[str] = (
    "ChosenPositions", "ExampleDraws", "Substitutes", "augmentable_positions", "build_augmented_input",
    "choose_positions", "consistency_kl", "example_draws", "predict_substitutes", "mix_embeddings", "mix_lambdas",
    "pick_substitute", "random_substitutes", "special_token_ids", "topk_substitutes", "vocabulary_exclusion",
)
