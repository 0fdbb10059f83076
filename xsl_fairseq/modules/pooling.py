"""Pooling of token states into sentence (or span) vectors."""
from typing import List

import torch


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
