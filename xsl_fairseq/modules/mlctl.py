"""ML-CTL representations (Chen et al., ICASSP 2022): pooled sentence/word vectors and the
MLP over them, shared by the ``xsl_mlctl`` criterion and ``xsl-eval retrieval``.

* Sentence vector: :func:`~xsl_fairseq.modules.pooling.avg_first_last` over every non-pad
  token (``<s>``/``</s>`` included).
* Word vector: the same over the word's sub-token span.
* Levels (``--levels``): ``sentence`` (the info-snt / CZ-snt ablations), ``word``, or
  ``both`` = ML-CTL's multi-level vector ``[sentence; word]`` (one vector, one loss; the
  paper has no separate word and sentence losses).
* :class:`MlctlProjectionHead`: the official "CCE" MLP ``Linear(d, d) -> ReLU -> Linear(d, d)``
  with ``d`` = hidden size (one level) or twice it (``both``), initialised like the rest of
  a BERT model (normal, std 0.02, zero bias). It is registered on the model as the task
  head :data:`MLCTL_HEAD`, so it is saved in checkpoints and ``xsl-eval`` can use it.
"""
from typing import List, Optional

import torch
import torch.nn as nn
from fairseq.modules.transformer_sentence_encoder import init_bert_params

from .pooling import avg_first_last, span_mask

MLCTL_HEAD = "mlctl_projection"
MLCTL_LEVELS = ("sentence", "word", "both")


def projection_input_dim(levels: str, hidden_dim: int) -> int:
    if levels not in MLCTL_LEVELS:
        raise ValueError(f"unknown ML-CTL level {levels!r}; choose from {MLCTL_LEVELS}")
    return 2 * hidden_dim if levels == "both" else hidden_dim


class MlctlProjectionHead(nn.Module):
    """ML-CTL's MLP over the pooled vector(s): Linear -> ReLU -> Linear, width kept."""

    def __init__(self, input_dim: int):
        super().__init__()
        self.input_dim = input_dim
        self.dense = nn.Linear(input_dim, input_dim)
        self.activation = nn.ReLU()
        self.out_proj = nn.Linear(input_dim, input_dim)
        self.apply(init_bert_params)

    def forward(self, vectors: torch.Tensor) -> torch.Tensor:
        return self.out_proj(self.activation(self.dense(vectors.to(self.dense.weight.dtype))))


def level_vectors(
    hidden_states: List[torch.Tensor], tokens: torch.Tensor, spans: Optional[torch.Tensor], levels: str, padding_idx: int
) -> torch.Tensor:
    """Pooled vector of each row before the MLP (fp32): sentence, word or ``[sentence; word]``.

    ``spans`` (B x 2, inclusive token positions) may be ``None`` for ``sentence``.
    """
    if levels not in MLCTL_LEVELS:
        raise ValueError(f"unknown ML-CTL level {levels!r}; choose from {MLCTL_LEVELS}")
    parts = []
    if levels in ("sentence", "both"):
        parts.append(avg_first_last(hidden_states, tokens.ne(padding_idx)))
    if levels in ("word", "both"):
        if spans is None:
            raise ValueError(f"levels={levels!r} needs word spans")
        parts.append(avg_first_last(hidden_states, span_mask(tokens, spans) & tokens.ne(padding_idx)))
    return torch.cat(parts, dim=-1)


def head_levels(head: MlctlProjectionHead, hidden_dim: int) -> str:
    """``both`` for a head over ``[sentence; word]``, else ``sentence`` (one vector wide;
    a word-level head takes a word vector of the same width)."""
    if head.input_dim == 2 * hidden_dim:
        return "both"
    if head.input_dim == hidden_dim:
        return "sentence"
    raise ValueError(f"ML-CTL head of width {head.input_dim} does not fit hidden size {hidden_dim}")


def sentence_representation(model, hidden_states: List[torch.Tensor], tokens: torch.Tensor, padding_idx: int,
                            through_head: bool) -> torch.Tensor:
    """The ML-CTL vector of whole sentences, for retrieval.

    Without the head: the avg-first-last sentence vector. Through the head: the head's
    output; a head trained with ``--levels both`` is fed ``[sentence; sentence]``, i.e. the
    "word" slot gets the whole sentence as its span (a sentence has no single word to pick).
    """
    sentence = avg_first_last(hidden_states, tokens.ne(padding_idx))
    if not through_head:
        return sentence
    heads = getattr(model, "task_heads", {})
    if MLCTL_HEAD not in heads:
        raise ValueError(
            f"the checkpoint has no trained ML-CTL head ({MLCTL_HEAD!r}): it was not trained with "
            "--task xsl_mlctl; score it without the head"
        )
    head = heads[MLCTL_HEAD]
    if head_levels(head, sentence.size(-1)) == "both":
        sentence = torch.cat([sentence, sentence], dim=-1)
    return head(sentence).float()
