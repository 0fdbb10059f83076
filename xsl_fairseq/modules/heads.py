"""Small output heads that fine-tuning tasks register on :class:`XslRobertaModel`."""
import torch
import torch.nn as nn


class SpanPointerHead(nn.Module):
    """Start/end logits for every token (extractive QA, BERT-style)."""

    def __init__(self, embed_dim: int):
        super().__init__()
        self.proj = nn.Linear(embed_dim, 2)

    def forward(self, features: torch.Tensor):
        logits = self.proj(features)  # B x T x 2
        start_logits, end_logits = logits.unbind(dim=-1)
        return start_logits, end_logits


class TokenClassificationHead(nn.Module):
    """A label distribution for every token (NER, POS)."""

    def __init__(self, embed_dim: int, num_labels: int, dropout: float = 0.1):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.proj = nn.Linear(embed_dim, num_labels)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.proj(self.dropout(features))  # B x T x num_labels
