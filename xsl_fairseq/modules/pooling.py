"""Pooling of token states into sentence (or span) vectors, and the stacking of inputs
that share one encoder call."""
from typing import List, Tuple

import torch
import torch.nn.functional as F


def encoder_hidden_states(model, src_tokens: torch.Tensor, **kwargs) -> List[torch.Tensor]:
    """Embedding output and every layer's output (each B x T x C) of a RoBERTa-family
    model (fairseq's own ``RobertaModel`` included, so official checkpoints work too)."""
    _, extra = model.encoder.extract_features(src_tokens, return_all_hiddens=True, **kwargs)
    return [state.transpose(0, 1) for state in extra["inner_states"]]


def masked_mean(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``hidden`` (B x T x C) over the positions where ``mask`` (B x T) is true.

    Rows whose mask is empty give a zero vector instead of NaN, so a padded or dummy
    batch never poisons a gather across ranks.
    """
    weights = mask.to(hidden.dtype).unsqueeze(-1)
    total = (hidden * weights).sum(dim=1)
    count = weights.sum(dim=1).clamp(min=1.0)
    return total / count


def segment_mask(
    tokens: torch.Tensor,
    segment: int,
    separator_idx: int,
    padding_idx: int,
    bos_idx: int = None,
    include_special: bool = False,
) -> torch.Tensor:
    """Boolean mask (B x T) of the tokens of segment ``segment`` (0-based).

    Segments are separated by ``separator_idx`` (``</s>`` in RoBERTa/XLM-R). A run of
    adjacent separators (RoBERTa's ``</s></s>`` between a pair) counts as one
    boundary. With ``include_special`` the separators (and ``<s>``) that belong to the
    segment are kept, otherwise only the content tokens are.
    """
    is_sep = tokens.eq(separator_idx)
    prev_is_sep = torch.zeros_like(is_sep)
    prev_is_sep[:, 1:] = is_sep[:, :-1]
    boundary = is_sep & ~prev_is_sep
    # Index of the segment each position belongs to; the first separator of a run
    # still belongs to the segment it closes.
    segment_id = torch.cumsum(boundary.long(), dim=1) - boundary.long()
    mask = segment_id.eq(segment) & tokens.ne(padding_idx)
    if not include_special:
        mask &= ~is_sep
        if bos_idx is not None:
            mask &= tokens.ne(bos_idx)
    return mask


def span_mask(tokens: torch.Tensor, spans: torch.Tensor) -> torch.Tensor:
    """Boolean mask (B x T) of positions ``spans[b, 0] <= t <= spans[b, 1]`` (inclusive
    token positions, ``<s>`` = 0), e.g. the sub-tokens of one word."""
    positions = torch.arange(tokens.size(1), device=tokens.device).unsqueeze(0)
    return (positions >= spans[:, :1]) & (positions <= spans[:, 1:2])


def avg_first_last(hidden_states: List[torch.Tensor], mask: torch.Tensor) -> torch.Tensor:
    """ML-CTL's "avg-first-last" vector (B x C, fp32): the masked mean of the first
    Transformer layer (``hidden_states[1]``, not the embedding output) *plus* the masked
    mean of the last layer.

    As in the official code the two means are summed, not halved (the scale does not
    matter for cosine similarity or the MLP after it). For a sentence vector ``mask`` is
    every non-pad token, ``<s>``/``</s>`` included; for a word vector it is the word's
    sub-token span (:func:`span_mask`).
    """
    return masked_mean(hidden_states[1].float(), mask) + masked_mean(hidden_states[-1].float(), mask)


def avg_first_last_span(hidden_states: List[torch.Tensor], tokens: torch.Tensor, spans: torch.Tensor) -> torch.Tensor:
    """:func:`avg_first_last` over each row's inclusive token span ``spans`` (B x 2): ML-CTL's
    word vector."""
    return avg_first_last(hidden_states, span_mask(tokens, spans))


def stack_token_batches(batches: List[torch.Tensor], padding_idx: int) -> Tuple[torch.Tensor, List[slice]]:
    """Right-pad token batches (B_i x T_i) to a common width and stack them, so that one
    encoder call serves several inputs; returns the stacked tokens and each batch's rows.

    Right padding leaves every row's states unchanged (fairseq's positions and attention
    masks follow the non-pad tokens). One call launches one set of kernels instead of
    several, which matters on a GPU for small models; the cost is the padding of the
    narrower batches.
    """
    width = max(batch.size(1) for batch in batches)
    rows, start = [], 0
    for batch in batches:
        rows.append(slice(start, start + batch.size(0)))
        start += batch.size(0)
    tokens = torch.cat([F.pad(batch, (0, width - batch.size(1)), value=padding_idx) for batch in batches])
    return tokens, rows
