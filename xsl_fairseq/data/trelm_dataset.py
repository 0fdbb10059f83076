"""TreLM examples from one word-aligned pair (``xsl-prep trelm-align``): CdLM and MLM, 1:1.

Every pair gives the examples its stage asks for (:data:`STAGE_EXAMPLES`; TreLM's staged training,
notes §5-6):

* **CdLM** (stages ``upper``: source -> target, ``lower``: target -> source): the *unmasked* input sentence
  ``<s> x </s>`` in the input language, the TRILayer told the output language, the ordering alignment
  (output position -> input position; ``<s>`` -> ``<s>``, ``</s>`` -> ``</s>``, unaligned -> -1) and as
  target the output sentence's tokens at every output position (``<s>``/``</s>`` are not predicted: the
  alignment hands them over for free).
* **MLM**: fairseq's ``MaskTokensDataset`` masking (15%, 80/10/10) of ``<s> y </s>`` on the new-language
  side (and, in stage ``commonality``, on the English side too, with its own language id).
"""
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from fairseq.data import FairseqDataset, MaskTokensDataset, data_utils

from .ordering import length_sorted_order

UNALIGNED = -1

# stage -> (CdLM direction or None, sides that get an MLM example)
STAGE_EXAMPLES: Dict[str, Tuple[Optional[str], Tuple[str, ...]]] = {
    "commonality": (None, ("src", "tgt")),
    "upper": ("forward", ("tgt",)),
    "lower": ("reverse", ("tgt",)),
    "language": (None, ("tgt",)),
}


class _SentenceDataset(FairseqDataset):
    """``<s> ids </s>`` of the selected rows of a binarized side."""

    def __init__(self, ids, rows: np.ndarray, bos: int, eos: int):
        self.ids, self.rows, self.bos, self.eos = ids, rows, bos, eos
        self.sizes = ids.sizes[rows] + 2

    def __getitem__(self, index):
        row = self.ids[int(self.rows[index])]
        return torch.cat([row.new_tensor([self.bos]), row, row.new_tensor([self.eos])])

    def __len__(self):
        return len(self.rows)


class TrelmPairDataset(FairseqDataset):
    def __init__(self, src, tgt, align, align_rev, rows: np.ndarray, dictionary, stage: str,
                 source_lang_id: int, target_lang_id: int, seed: int, mask_prob: float = 0.15,
                 leave_unmasked_prob: float = 0.1, random_token_prob: float = 0.1, shuffle: bool = True):
        if stage not in STAGE_EXAMPLES:
            raise ValueError(f"unknown TreLM stage {stage!r}; choose from {sorted(STAGE_EXAMPLES)}")
        self.dictionary, self.pad = dictionary, dictionary.pad()
        self.rows = np.asarray(rows, dtype=np.int64)
        self.direction, mlm_sides = STAGE_EXAMPLES[stage]
        bos, eos = dictionary.bos(), dictionary.eos()
        self.sides = {"src": _SentenceDataset(src, self.rows, bos, eos), "tgt": _SentenceDataset(tgt, self.rows, bos, eos)}
        self.lang_id = {"src": source_lang_id, "tgt": target_lang_id}
        self.align = {"forward": align, "reverse": align_rev}
        self.seed, self.shuffle, self.epoch = seed, shuffle, 1
        mask_idx = dictionary.index("<mask>")
        self.masked = {}
        for offset, side in enumerate(mlm_sides):
            common = dict(vocab=dictionary, pad_idx=self.pad, mask_idx=mask_idx, seed=seed + offset,
                          mask_prob=mask_prob, leave_unmasked_prob=leave_unmasked_prob,
                          random_token_prob=random_token_prob)
            self.masked[side] = (MaskTokensDataset(self.sides[side], return_masked_tokens=False, **common),
                                 MaskTokensDataset(self.sides[side], return_masked_tokens=True, **common))
        src_sizes, tgt_sizes = self.sides["src"].sizes, self.sides["tgt"].sizes
        # tokens of all examples of a pair: what --max-tokens batches by
        self.sizes = sum((src_sizes if s == "src" else tgt_sizes) for s in self.masked)
        if self.direction is not None:
            self.sizes = self.sizes + src_sizes + tgt_sizes
        self.longest_side = np.maximum(src_sizes, tgt_sizes)  # what --max-positions limits

    def set_epoch(self, epoch):
        self.epoch = epoch
        for source, target in self.masked.values():
            source.set_epoch(epoch)
            target.set_epoch(epoch)

    @property
    def can_reuse_epoch_itr_across_epochs(self):
        return False  # masks change every epoch

    def __len__(self):
        return len(self.rows)

    def cdlm_example(self, index: int):
        """(input tokens, ordering alignment, output-side target) of the CdLM example."""
        in_side, out_side = ("src", "tgt") if self.direction == "forward" else ("tgt", "src")
        tokens, output = self.sides[in_side][index], self.sides[out_side][index]
        inner = self.align[self.direction][int(self.rows[index])]
        if inner.numel() != output.numel() - 2:
            raise ValueError(f"pair {int(self.rows[index])}: alignment has {inner.numel()} entries for "
                             f"{output.numel() - 2} output tokens (data written by another trelm-align run?)")
        shifted = torch.where(inner.eq(UNALIGNED), inner, inner + 1)
        if shifted.numel() and int(shifted.max()) >= tokens.numel() - 1:
            raise ValueError(f"pair {int(self.rows[index])}: alignment points past the input sentence")
        alignment = torch.cat([shifted.new_tensor([0]), shifted, shifted.new_tensor([tokens.numel() - 1])])
        target = output.clone()
        target[0] = target[-1] = self.pad
        return tokens, alignment, target

    def __getitem__(self, index):
        item = {"id": index, "mlm": []}
        for side, (source, target) in self.masked.items():
            item["mlm"].append((source[index], target[index], self.lang_id[side]))
        if self.direction is not None:
            tokens, alignment, target = self.cdlm_example(index)
            in_side, out_side = ("src", "tgt") if self.direction == "forward" else ("tgt", "src")
            item["cdlm"] = (tokens, alignment, target, self.lang_id[in_side], self.lang_id[out_side])
        return item

    def _net_input(self, tokens: List[torch.Tensor], lang_ids: Sequence[int]) -> dict:
        return {"src_tokens": data_utils.collate_tokens(tokens, self.pad),
                "src_lengths": torch.tensor([t.numel() for t in tokens], dtype=torch.long),
                "lang_ids": torch.tensor(lang_ids, dtype=torch.long)}

    def collater(self, items):
        if not items:
            return {}
        mlm = [example for item in items for example in item["mlm"]]
        sample = {
            "id": torch.tensor([item["id"] for item in items], dtype=torch.long),
            "mlm": {"net_input": self._net_input([e[0] for e in mlm], [e[2] for e in mlm]),
                    "target": data_utils.collate_tokens([e[1] for e in mlm], self.pad)},
        }
        ntokens, nsentences = sum(e[0].numel() for e in mlm), len(mlm)
        if self.direction is not None:
            cdlm = [item["cdlm"] for item in items]
            net_input = self._net_input([e[0] for e in cdlm], [e[3] for e in cdlm])
            target = data_utils.collate_tokens([e[2] for e in cdlm], self.pad)
            lengths = torch.tensor([e[1].numel() for e in cdlm])
            net_input.update(
                tlayer_lang_ids=torch.tensor([e[4] for e in cdlm], dtype=torch.long),
                # padded output positions: alignment 0 (<s>, any valid position), masked by target_padding_mask
                ordering_alignment=data_utils.collate_tokens([e[1] for e in cdlm], 0),
                target_padding_mask=torch.arange(target.size(1)).unsqueeze(0) >= lengths.unsqueeze(1),
            )
            sample["cdlm"] = {"net_input": net_input, "target": target}
            ntokens += sum(e[0].numel() for e in cdlm)
            nsentences += len(cdlm)
        sample.update(nsentences=nsentences, ntokens=ntokens)
        return sample

    def num_tokens(self, index):
        return int(self.sizes[index])

    def size(self, index):
        return int(self.longest_side[index])

    def filter_indices_by_size(self, indices, max_sizes):
        """Filter by the longest side (``sizes`` counts all tokens of a pair's examples, for batching)."""
        if max_sizes is None:
            return indices, []
        limit = max_sizes if isinstance(max_sizes, (int, float)) else min(max_sizes)
        keep = self.longest_side[indices] <= limit
        return indices[keep], indices[~keep].tolist()

    def ordered_indices(self):
        """Shuffled (seed, epoch), then stably sorted by length so batches pad little."""
        return length_sorted_order(self.sizes, self.seed, self.epoch, self.shuffle)
