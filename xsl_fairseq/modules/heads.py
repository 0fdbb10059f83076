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


QUERY_POINTER_HEAD = "clism_pointer"  # the name CLISM pretraining and the [QUE] QA mode share


class QueryPointerHead(nn.Module):
    """CLISM's span pointer (Chen et al., NAACL 2022, Eqs. 1-3): the state x_q of a query
    token (``[QUE]``) gives a start vector W_s x_q and an end vector W_e x_q, and token k
    scores x_k . W_s x_q (start) and x_k . W_e x_q (end).

    No bias, as in Eq. 1; W_s and W_e start from N(0, 0.02), BERT's initialisation.
    Pretraining saves the head in the model (``task_heads``), so the ``[QUE]`` mode of
    extractive QA fine-tunes the same W_s / W_e.
    """

    def __init__(self, embed_dim: int):
        super().__init__()
        self.start = nn.Linear(embed_dim, embed_dim, bias=False)
        self.end = nn.Linear(embed_dim, embed_dim, bias=False)
        for proj in (self.start, self.end):
            nn.init.normal_(proj.weight, mean=0.0, std=0.02)

    def forward(self, features: torch.Tensor, query_states: torch.Tensor, rows: torch.Tensor = None):
        """Start and end logits (each N x T) of N queries over their own sequence.

        ``features`` B x T x C, ``query_states`` N x C, ``rows`` (N) the sequence of each
        query (default: query i reads row i). A sequence may hold several queries (CLISM
        answers every ``[QUE]`` of a sentence at once): their vectors are stacked per row
        and scored with one ``bmm``, so no per-query copy of the sequence is made.
        """
        if rows is None:
            rows = torch.arange(query_states.size(0), device=query_states.device)
        counts = torch.bincount(rows, minlength=features.size(0))
        order = torch.argsort(rows, stable=True)
        first_of_row = torch.cumsum(counts, 0) - counts
        slot = torch.empty_like(rows)
        slot[order] = torch.arange(rows.numel(), device=rows.device) - first_of_row[rows[order]]
        width = int(counts.max()) if rows.numel() else 0
        logits = []
        for proj in (self.start, self.end):
            vectors = features.new_zeros(features.size(0), width, features.size(-1))
            vectors = vectors.index_put((rows, slot), proj(query_states).to(features.dtype))
            scores = torch.bmm(features, vectors.transpose(1, 2))  # B x T x width
            logits.append(scores[rows, :, slot])
        return logits[0], logits[1]


def first_query_states(features: torch.Tensor, tokens: torch.Tensor, query_idx: int) -> torch.Tensor:
    """State (B x C) of the first ``query_idx`` token of every row; a row without one is
    an error (the data was written without ``[QUE]``)."""
    is_query = tokens.eq(query_idx)
    if not bool(is_query.any(dim=1).all()):
        raise ValueError(f"a row has no query token (id {query_idx}); were the windows written in [QUE] mode?")
    positions = is_query.long().argmax(dim=1)
    return features[torch.arange(features.size(0), device=features.device), positions]
