"""Update-indexed language schedule for meta-pretraining (Chi et al., *Cross-Lingual
Language Model Meta-Pretraining*, arXiv 2109.11129).

Following the paper's description; details not published. Phase 1 ("meta-pretraining",
generalisation) draws every batch from one language; phase 2 (cross-lingual pretraining)
draws each batch's language from the exponentially smoothed distribution of XLM / XLM-R,
``q_i = p_i^alpha / sum_j p_j^alpha`` with ``p_i = n_i / sum_j n_j`` (``n_i`` = training items
of language ``i``, fairseq's ``multilingual_masked_lm`` convention). An optional linear ramp
mixes the two: a batch of update ``u`` comes from the phase-2 distribution with probability
``mix(u)`` and from the phase-1 language otherwise.

Determinism is what makes resume exact: the language of the batch at global position ``g``
(counted over epochs) is a pure function of ``(seed, g)`` and the schedule, and position
``g`` belongs to update ``g // (world_size * update_freq)``. Every epoch holds the same
number of batches, a multiple of ``world_size * update_freq``, so no update straddles an
epoch boundary. fairseq restores ``(epoch, batches consumed)`` on resume, and the plan for
that epoch is rebuilt identically. Within a language, batches (fairseq's size-bucketed
``batch_by_size``) are visited in a fresh seeded permutation on every pass over it.
Batches are monolingual (the XLM / XLM-R convention), which also makes the per-language
MLM loss exact.
"""
from dataclasses import dataclass
from typing import Dict, List, Sequence

import numpy as np
import torch
from fairseq.data import FairseqDataset

# seed offsets keep the language draws and the per-language permutations independent streams
_LANGUAGE_DRAW_STREAM = 7919
_PERMUTATION_STREAM = 104729


def smoothed_sampling_probs(sizes: Sequence[float], alpha: float) -> np.ndarray:
    """XLM-R's exponentially smoothed language distribution ``p_i^alpha / sum_j p_j^alpha``."""
    sizes = np.asarray(sizes, dtype=np.float64)
    if (sizes <= 0).any():
        raise ValueError(f"every language needs training data, got sizes {sizes.tolist()}")
    p = sizes / sizes.sum()
    q = p ** alpha
    return q / q.sum()


@dataclass(frozen=True)
class MetaSchedule:
    """Which distribution the batches of update ``u`` (0-based: the first update is 0) use.

    Phase 1 = updates ``0 .. phase1_updates - 1``; the first phase-2 update is
    ``phase1_updates``. With ``ramp_updates = R > 0`` the phase-2 share grows linearly,
    ``mix(u) = min(1, (u - N + 1) / R)`` for ``u >= N``: ``1/R`` at the first phase-2 update,
    1 from update ``N + R - 1`` on.
    """

    languages: tuple
    phase1_language: int  # index into languages
    phase1_updates: int
    ramp_updates: int
    phase2_probs: tuple  # smoothed distribution over languages

    def mix(self, update) -> np.ndarray:
        """Share of phase-2 batches at each update in ``update`` (array or int)."""
        u = np.asarray(update, dtype=np.float64)
        after = u - self.phase1_updates + 1
        if self.ramp_updates > 0:
            return np.clip(after / self.ramp_updates, 0.0, 1.0)
        return (after > 0).astype(np.float64)

    def phase(self, update: int) -> int:
        return 1 if update < self.phase1_updates else 2

    def probabilities(self, update) -> np.ndarray:
        """Language distribution of a batch at ``update``: rows = updates, columns = languages."""
        m = np.atleast_1d(self.mix(update))[:, None]
        one_hot = np.zeros(len(self.languages))
        one_hot[self.phase1_language] = 1.0
        return (1.0 - m) * one_hot[None, :] + m * np.asarray(self.phase2_probs)[None, :]


class MetaBatchPlan:
    """The batches of every epoch, as global indices into a :class:`LanguageConcatDataset`.

    ``language_batches[i]`` are language ``i``'s batches (local indices), ``offsets[i]`` its
    first global index. ``batches_per_update`` = world size x update frequency.
    """

    def __init__(self, schedule: MetaSchedule, language_batches: List[List[np.ndarray]],
                 offsets: Sequence[int], batches_per_epoch: int, batches_per_update: int, seed: int):
        if batches_per_epoch % batches_per_update:
            raise ValueError("batches_per_epoch must be a multiple of batches_per_update")
        self.schedule = schedule
        self.language_batches = language_batches
        self.offsets = list(offsets)
        self.batches_per_epoch = batches_per_epoch
        self.batches_per_update = batches_per_update
        self.seed = seed
        self._languages_cache: Dict[int, np.ndarray] = {}

    def first_update(self, epoch: int) -> int:
        return (epoch - 1) * self.batches_per_epoch // self.batches_per_update

    def epoch_languages(self, epoch: int) -> np.ndarray:
        """Language index of every batch of ``epoch`` (a function of seed, epoch and schedule)."""
        if epoch not in self._languages_cache:
            start = (epoch - 1) * self.batches_per_epoch
            positions = np.arange(start, start + self.batches_per_epoch)
            probs = self.schedule.probabilities(positions // self.batches_per_update)
            cumulative = np.cumsum(probs, axis=1)
            cumulative[:, -1] = 1.0  # guard against rounding: every draw < 1 lands somewhere
            draws = np.random.RandomState([self.seed, _LANGUAGE_DRAW_STREAM, epoch]).random_sample(
                self.batches_per_epoch)
            self._languages_cache[epoch] = (draws[:, None] >= cumulative).sum(axis=1)
        return self._languages_cache[epoch]

    def _permutation(self, language: int, pass_index: int) -> np.ndarray:
        rng = np.random.RandomState([self.seed, _PERMUTATION_STREAM, language, pass_index])
        return rng.permutation(len(self.language_batches[language]))

    def batches(self, epoch: int) -> List[np.ndarray]:
        """The ordered batches of ``epoch``; each language continues where it left off."""
        num_languages = len(self.schedule.languages)
        drawn = np.zeros(num_languages, dtype=np.int64)
        for earlier in range(1, epoch):
            drawn += np.bincount(self.epoch_languages(earlier), minlength=num_languages)
        out, permutations = [], {}
        for language in self.epoch_languages(epoch):
            count = len(self.language_batches[language])
            pass_index, position = divmod(int(drawn[language]), count)
            key = (language, pass_index)
            if key not in permutations:
                permutations[key] = self._permutation(language, pass_index)
            local = self.language_batches[language][permutations[key][position]]
            out.append(np.asarray(local, dtype=np.int64) + self.offsets[language])
            drawn[language] += 1
        return out


class LanguageConcatDataset(FairseqDataset):
    """Several per-language MLM datasets behind one index space; batches are monolingual and
    their collated sample carries ``lang_id`` (a 0-dim long tensor: ``language_ids[i]`` for a
    batch of ``datasets[i]``, the task's index of that language)."""

    def __init__(self, datasets: List[FairseqDataset], language_ids: Sequence[int]):
        super().__init__()
        self.datasets = list(datasets)
        self.language_ids = [int(i) for i in language_ids]
        lengths = [len(d) for d in self.datasets]
        self.offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        self._total = int(sum(lengths))
        # NestedDictionaryDataset keeps a list of size arrays; the first is the token count
        self._sizes = np.concatenate([np.asarray(d.sizes[0] if isinstance(d.sizes, list) else d.sizes)
                                      for d in self.datasets])

    def locate(self, index: int):
        language = int(np.searchsorted(self.offsets, index, side="right") - 1)
        return language, int(index - self.offsets[language])

    def __getitem__(self, index):
        language, local = self.locate(index)
        return {"item": self.datasets[language][local], "lang": language}

    def __len__(self):
        return self._total

    def collater(self, samples):
        if len(samples) == 0:
            return {}
        language = samples[0]["lang"]
        if any(s["lang"] != language for s in samples):
            raise ValueError("a batch of LanguageConcatDataset mixes languages")
        batch = self.datasets[language].collater([s["item"] for s in samples])
        batch["lang_id"] = torch.tensor(self.language_ids[language], dtype=torch.long)
        return batch

    @property
    def sizes(self):
        return self._sizes

    def num_tokens(self, index):
        return int(self._sizes[index])

    def size(self, index):
        return int(self._sizes[index])

    def ordered_indices(self):
        return np.arange(self._total)

    @property
    def supports_prefetch(self):
        return False

    def set_epoch(self, epoch):
        super().set_epoch(epoch)
        for dataset in self.datasets:
            if hasattr(dataset, "set_epoch"):
                dataset.set_epoch(epoch)
