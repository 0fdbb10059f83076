"""CLISM examples: ``<s> masked-source </s> target </s>`` with ``[QUE]``s, answers and MLM masks.

One item of :class:`ClismPairDataset` is built from one binarized pair (``xsl-prep
clism-binarize``): English ids, target ids and the sub-token spans (source first/last,
answer first/last, inclusive).

* **Input X.** Every source span becomes one ``[QUE]``, whatever its length; X is
  ``<s> ŝ </s> t </s>`` (one ``</s>`` between the segments, like ``xsl_span_qa``).
* **Answers.** For the i-th ``[QUE]``: its position in X and the positions in X of the
  first and last sub-token of its aligned target span.
* **MLM.** BERT masking of X: ``--mask-prob`` (15%) of the eligible positions, chosen
  with probabilistic rounding as fairseq's ``MaskTokensDataset`` does; of those 80%
  become ``<mask>``, 10% a random token, 10% stay. Eligible are all positions except
  ``<s>``, ``</s>``, every ``[QUE]`` and every answer sub-token (masking an answer
  would hide what the pointer must find; masking a ``[QUE]`` would remove the
  question). Random replacements are drawn from the regular vocabulary only (ids
  between fairseq's specials and ``<mask>``), so a random token is never ``[QUE]``.
  Masks depend on (seed, epoch, index) only.
* **Source pass.** The unmasked English ``<s> s </s>`` for CACR's r^s (``source``),
  or ``<s> s </s> t </s>`` (``paired``).
"""
from typing import List

import numpy as np
import torch
from fairseq.data import FairseqDataset, data_utils

from .ordering import length_sorted_order

SOURCE_PASSES = ("source", "paired")


class ClismPairDataset(FairseqDataset):
    def __init__(self, src, tgt, spans, pair_ids: np.ndarray, dictionary, que_idx: int, seed: int,
                 mask_prob: float = 0.15, leave_unmasked_prob: float = 0.1, random_token_prob: float = 0.1,
                 source_pass: str = "source", shuffle: bool = True):
        if source_pass not in SOURCE_PASSES:
            raise ValueError(f"unknown source pass {source_pass!r}; choose from {SOURCE_PASSES}")
        if not 0.0 <= leave_unmasked_prob + random_token_prob <= 1.0:
            raise ValueError("leave_unmasked_prob + random_token_prob must lie in [0, 1]")
        self.src, self.tgt, self.spans = src, tgt, spans
        self.pair_ids = np.asarray(pair_ids, dtype=np.int64)
        self.dictionary = dictionary
        self.que_idx = que_idx
        self.mask_idx = dictionary.index("<mask>")
        self.seed = seed
        self.mask_prob = mask_prob
        self.leave_unmasked_prob = leave_unmasked_prob
        self.random_token_prob = random_token_prob
        self.source_pass = source_pass
        self.shuffle = shuffle
        self.epoch = 1
        spans_per_pair = spans.sizes[self.pair_ids] // 4
        source_sizes = src.sizes[self.pair_ids]
        self.masked_source_sizes = source_sizes - self._span_token_counts() + spans_per_pair
        self.sizes = self.masked_source_sizes + tgt.sizes[self.pair_ids] + 3

    def _span_token_counts(self) -> np.ndarray:
        counts = np.zeros(len(self.pair_ids), dtype=np.int64)
        for k, pair in enumerate(self.pair_ids):
            quads = self.spans[int(pair)].numpy().reshape(-1, 4)
            counts[k] = int((quads[:, 1] - quads[:, 0] + 1).sum())
        return counts

    def set_epoch(self, epoch):
        self.epoch = epoch

    @property
    def can_reuse_epoch_itr_across_epochs(self):
        return False  # masks change every epoch

    def __len__(self):
        return len(self.pair_ids)

    def build_input(self, index: int):
        """Unmasked-by-MLM X, [QUE] positions, answer positions and the source-pass input."""
        pair = int(self.pair_ids[index])
        src, tgt = self.src[pair].tolist(), self.tgt[pair].tolist()
        quads = sorted(tuple(q) for q in self.spans[pair].view(-1, 4).tolist())
        bos, eos = self.dictionary.bos(), self.dictionary.eos()
        masked_source: List[int] = []
        que_positions, cursor = [], 0
        for src_first, src_last, _, _ in quads:
            masked_source += src[cursor:src_first]
            que_positions.append(1 + len(masked_source))
            masked_source.append(self.que_idx)
            cursor = src_last + 1
        masked_source += src[cursor:]
        target_offset = len(masked_source) + 2  # <s> ŝ </s>
        tokens = [bos, *masked_source, eos, *tgt, eos]
        starts = [target_offset + q[2] for q in quads]
        ends = [target_offset + q[3] for q in quads]
        source = [bos, *src, eos] + ([*tgt, eos] if self.source_pass == "paired" else [])
        return tokens, que_positions, starts, ends, source

    def mlm_mask(self, index: int, tokens: List[int], que_positions, starts, ends):
        """(masked tokens, MLM target with pad where nothing is predicted)."""
        tokens = np.array(tokens, dtype=np.int64)
        target = np.full_like(tokens, self.dictionary.pad())
        if self.mask_prob <= 0:
            return tokens, target
        eligible = np.ones(len(tokens), dtype=bool)
        eligible[tokens == self.dictionary.bos()] = False
        eligible[tokens == self.dictionary.eos()] = False
        eligible[que_positions] = False
        for start, end in zip(starts, ends):
            eligible[start:end + 1] = False
        candidates = np.flatnonzero(eligible)
        with data_utils.numpy_seed(self.seed, self.epoch, index):
            num_masked = min(len(candidates), int(self.mask_prob * len(candidates) + np.random.rand()))
            chosen = np.random.choice(candidates, num_masked, replace=False)
            decision = np.random.rand(num_masked)
            random_tokens = np.random.randint(self.dictionary.nspecial, self.mask_idx, size=num_masked)
        target[chosen] = tokens[chosen]
        keep = decision < self.leave_unmasked_prob
        randomise = ~keep & (decision < self.leave_unmasked_prob + self.random_token_prob)
        replace_by_mask = ~keep & ~randomise
        tokens[chosen[randomise]] = random_tokens[randomise]
        tokens[chosen[replace_by_mask]] = self.mask_idx
        return tokens, target

    def __getitem__(self, index):
        tokens, que_positions, starts, ends, source = self.build_input(index)
        masked, target = self.mlm_mask(index, tokens, que_positions, starts, ends)
        return {
            "id": index,
            "tokens": torch.from_numpy(masked),
            "mlm_target": torch.from_numpy(target),
            "source": torch.tensor(source, dtype=torch.long),
            "que_positions": torch.tensor(que_positions, dtype=torch.long),
            "answer_starts": torch.tensor(starts, dtype=torch.long),
            "answer_ends": torch.tensor(ends, dtype=torch.long),
        }

    def collater(self, samples):
        if not samples:
            return {}
        pad = self.dictionary.pad()
        tokens = data_utils.collate_tokens([s["tokens"] for s in samples], pad)
        source = data_utils.collate_tokens([s["source"] for s in samples], pad)
        rows = torch.cat([torch.full_like(s["que_positions"], b) for b, s in enumerate(samples)])
        return {
            "id": torch.tensor([s["id"] for s in samples], dtype=torch.long),
            "nsentences": len(samples),
            "ntokens": sum(len(s["tokens"]) for s in samples),
            "net_input": {
                "src_tokens": tokens,
                "src_lengths": torch.tensor([len(s["tokens"]) for s in samples], dtype=torch.long),
            },
            "target": data_utils.collate_tokens([s["mlm_target"] for s in samples], pad),
            "source_net_input": {
                "src_tokens": source,
                "src_lengths": torch.tensor([len(s["source"]) for s in samples], dtype=torch.long),
            },
            "que": {
                "rows": rows,
                "positions": torch.cat([s["que_positions"] for s in samples]),
                "answer_starts": torch.cat([s["answer_starts"] for s in samples]),
                "answer_ends": torch.cat([s["answer_ends"] for s in samples]),
            },
        }

    def num_tokens(self, index):
        return int(self.sizes[index])

    def size(self, index):
        return int(self.sizes[index])

    def ordered_indices(self):
        """Shuffled (seed, epoch), then stably sorted by length so batches pad little."""
        return length_sorted_order(self.sizes, self.seed, self.epoch, self.shuffle)
