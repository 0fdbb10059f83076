"""Masked-LM cross entropy, shared by every criterion that adds an MLM term."""
from typing import NamedTuple

import torch
from fairseq import modules as fairseq_modules


class MaskedLMLoss(NamedTuple):
    loss: torch.Tensor  # sum over predicted tokens
    num_predicted: torch.Tensor  # number of tokens that carry a target
    num_correct: torch.Tensor  # argmax hits, for the accuracy log


def masked_lm_loss(model, net_input: dict, target, padding_idx) -> MaskedLMLoss:
    """Run ``model`` on ``net_input`` (``src_tokens`` and friends) and score the non-pad positions of ``target``
    (see :func:`masked_lm_loss_from_features`)."""
    features = model(**net_input, features_only=True)[0]
    return masked_lm_loss_from_features(model, features, target, padding_idx)


def masked_lm_loss_from_features(model, features: torch.Tensor, target, padding_idx) -> MaskedLMLoss:
    """Cross entropy of the LM head at the non-pad positions of ``target``, on encoder
    ``features`` (B x T x C) already computed (criterions that use the same pass for other
    terms too, such as CLISM's pointer and pooled states, call this directly).

    Only masked positions go through the output projection (the vocabulary-sized
    matmul dominates MLM cost). When nothing is masked (possible for very short
    inputs), the loss is an exact zero that still depends on the LM head, so DDP's
    gradient all-reduce sees every parameter on every rank.
    """
    masked_tokens = target.ne(padding_idx)
    num_predicted = masked_tokens.sum()
    if not masked_tokens.any():
        zero = model.encoder.output_layer(features[:, :1]).sum() * 0.0  # keeps the LM head in the graph
        return MaskedLMLoss(zero, num_predicted, num_predicted.clone())
    logits = model.encoder.output_layer(features, masked_tokens=masked_tokens)
    targets = target[masked_tokens]
    loss = fairseq_modules.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1), reduction="sum")
    return MaskedLMLoss(loss, num_predicted, count_top1(logits, targets))


def count_top1(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Rows whose target logit is the row's maximum (an argmax hit; a tie with another token also counts).

    The same count as ``(logits.argmax(-1) == targets).sum()`` at a fifth of its CPU time: over an N x V
    vocabulary projection argmax cost about 3% of a CdLM update (benchmarks/run.py --profile), a max and a
    gather cost almost nothing."""
    with torch.no_grad():
        return logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1).ge(logits.amax(dim=-1)).sum()
