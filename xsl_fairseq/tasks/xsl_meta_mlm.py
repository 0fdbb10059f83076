"""``xsl_meta_mlm``: meta-pretraining schedules (Chi et al., *Cross-Lingual Language Model
Meta-Pretraining*, arXiv 2109.11129), following the paper's description; details not
published.

One ``fairseq-train`` run, two phases of masked LM with the same model and vocabulary:

* phase 1, updates ``0 .. N-1`` (``--meta-phase1-updates N``): every batch comes from one
  language (``--meta-phase1-language``, English by default), the "generalisation" phase;
* phase 2, from update ``N``: each batch's language is drawn from the exponentially smoothed
  distribution over all languages (``--multilang-sampling-alpha``, 0.3 as in XLM-R), the
  "cross-lingual transfer" phase; ``--meta-ramp-updates R`` mixes linearly over R updates.

``--meta-phase1-updates 0`` is the single-phase multilingual baseline with the same batches
per update. Data: fairseq ``multilingual_masked_lm``'s layout, one binarized directory per
language (``xsl-prep binarize-mono --per-language``)::

    DATA/dict.txt  DATA/en/{dict.txt,train.*,valid.*}  DATA/de/...

Validation subsets: ``valid`` (all languages) and ``valid_<lang>`` (one language, e.g.
``--valid-subset valid_en,valid_de``: held-out MLM loss / perplexity per language).

The paper does not say whether the optimizer restarts between the phases; the note's
recommendation (reset at the switch) is ``--meta-reset-optimizer`` (Adam moments and step
counts cleared at update N, in the run) and ``--meta-rewarmup-updates W`` (a linear LR
warm-up over the W updates after the switch, applied as a factor on the LR that the
trainer's scheduler set for the update: a task sees the optimizer, not the scheduler, so it
cannot restart the schedule itself). A full restart of both, schedule included, is the
two-run form (``--finetune-from-model`` phase-1 checkpoint, or ``--restore-file`` with
``--reset-optimizer --reset-lr-scheduler --reset-dataloader``), see
``examples/meta_pretraining``.

The batch plan is a pure function of (seed, epoch, batch position) and the schedule (see
:mod:`xsl_fairseq.data.meta_schedule`), so a resumed run reproduces the data order. The
schedule and the current phase / mixing share / language probabilities are kept in the
task's checkpointed ``state``; resuming with a different schedule is an error unless the
data loader is reset. Under ``--fp16`` a step skipped for gradient overflow is not counted
as an update by fairseq while its batches are consumed, so the data schedule then runs
ahead of the update counter by the number of skipped steps.
"""
import logging
import os
from dataclasses import dataclass, field
from typing import List

import numpy as np
import torch
from fairseq import metrics
from fairseq.data import Dictionary, data_utils, iterators
from fairseq.tasks import register_task
from omegaconf import II

from preprocess import InputError

from ..data.meta_schedule import (
    LanguageConcatDataset,
    MetaBatchPlan,
    MetaSchedule,
    smoothed_sampling_probs,
)
from .xsl_masked_lm import XslMaskedLMConfig, XslMaskedLMTask

logger = logging.getLogger(__name__)

STATE_KEY = "meta_schedule"


@dataclass
class XslMetaMLMConfig(XslMaskedLMConfig):
    languages: str = field(
        default="",
        metadata={"help": "comma-separated language directories of DATA to use "
                  "(default: every sub-directory, sorted)"},
    )
    meta_phase1_language: str = field(
        default="en", metadata={"help": "the monolingual language of phase 1"}
    )
    meta_phase1_updates: int = field(
        default=0,
        metadata={"help": "number of phase-1 (monolingual) updates; phase 2 (multilingual) "
                  "starts at this update; 0 = single-phase multilingual MLM"},
    )
    meta_ramp_updates: int = field(
        default=0,
        metadata={"help": "mix phase-2 batches in linearly over this many updates after the "
                  "switch (0 = hard switch)"},
    )
    multilang_sampling_alpha: float = field(
        default=0.3,
        metadata={"help": "phase-2 language sampling q_i ~ p_i^alpha (XLM-R: 0.3; 1 = "
                  "proportional to corpus size, 0 = uniform)"},
    )
    meta_epoch_batches: int = field(
        default=0,
        metadata={"help": "batches per epoch (over all ranks; rounded up to a multiple of "
                  "world size x update freq); 0 = the number of batches of all languages"},
    )
    meta_reset_optimizer: bool = field(
        default=False,
        metadata={"help": "clear the optimizer state (Adam moments, step counts) at the first "
                  "phase-2 update"},
    )
    meta_rewarmup_updates: int = field(
        default=0,
        metadata={"help": "re-warm the learning rate after the switch: the scheduler's LR times "
                  "min(1, (u - N + 1) / W) for W updates (0 = off)"},
    )
    max_update: int = II("optimization.max_update")
    update_freq: List[int] = II("optimization.update_freq")
    train_subset: str = II("dataset.train_subset")
    save_dir: str = II("checkpoint.save_dir")
    restore_file: str = II("checkpoint.restore_file")
    reset_dataloader: bool = II("checkpoint.reset_dataloader")


def discover_languages(data: str, requested: str) -> List[str]:
    if not os.path.isdir(data):
        raise FileNotFoundError(f"{data}: data directory not found")
    found = sorted(n for n in os.listdir(data) if os.path.isdir(os.path.join(data, n)))
    if requested:
        languages = [c.strip() for c in requested.split(",") if c.strip()]
        missing = [lang for lang in languages if lang not in found]
        if missing:
            raise FileNotFoundError(
                f"{data}: no directory for language(s) {missing} (found: {found})")
    else:
        languages = found
    if not languages:
        raise FileNotFoundError(
            f"{data}: no language directories (expected DATA/<lang>/train.bin, written by "
            "xsl-prep binarize-mono --per-language)")
    return languages


def check_language_dirs(data: str, languages: List[str], dict_path: str) -> None:
    """Every language directory has a train split and the same dictionary."""
    with open(dict_path, "rb") as f:
        reference = f.read()
    for lang in languages:
        lang_dir = os.path.join(data, lang)
        for suffix in (".bin", ".idx"):
            path = os.path.join(lang_dir, "train" + suffix)
            if not os.path.isfile(path):
                raise FileNotFoundError(f"{path}: training split of language {lang!r} not found")
        lang_dict = os.path.join(lang_dir, "dict.txt")
        if os.path.isfile(lang_dict) and os.path.abspath(lang_dict) != os.path.abspath(dict_path):
            with open(lang_dict, "rb") as f:
                if f.read() != reference:
                    raise ValueError(
                        f"{lang_dict} differs from {dict_path}: every language must be binarized "
                        "with the same dictionary (xsl-prep binarize-mono --per-language --dict ...)")


@register_task("xsl_meta_mlm", dataclass=XslMetaMLMConfig)
class XslMetaMLMTask(XslMaskedLMTask):
    cfg: XslMetaMLMConfig

    def __init__(self, cfg: XslMetaMLMConfig, dictionary=None, inference_only: bool = False):
        super().__init__(cfg, dictionary)
        self.schedule = None  # built when the training data is loaded (needs corpus sizes)
        self._plan = None
        self._optimizer_reset_done = False
        self._rewarmed_update = None
        if inference_only:
            self.languages = [c.strip() for c in cfg.languages.split(",") if c.strip()]
            return
        self.languages = discover_languages(cfg.data, cfg.languages)
        if cfg.meta_phase1_language not in self.languages:
            raise InputError(
                f"--meta-phase1-language {cfg.meta_phase1_language!r} is not among the language "
                f"directories of {cfg.data}: {self.languages}")
        if cfg.meta_phase1_updates < 0 or cfg.meta_ramp_updates < 0:
            raise InputError("--meta-phase1-updates and --meta-ramp-updates must be >= 0")
        max_update = cfg.max_update or 0
        if max_update > 0 and cfg.meta_phase1_updates > max_update:
            raise InputError(
                f"--meta-phase1-updates {cfg.meta_phase1_updates} is beyond --max-update "
                f"{max_update}: phase 2 would never start")
        if not 0.0 <= cfg.multilang_sampling_alpha <= 1.0:
            raise InputError(f"--multilang-sampling-alpha must be in [0, 1], got "
                             f"{cfg.multilang_sampling_alpha}")
        update_freq = list(cfg.update_freq) if cfg.update_freq is not None else [1]
        if len(set(update_freq)) > 1:
            raise InputError("xsl_meta_mlm needs one --update-freq for all epochs (the schedule "
                             f"maps batches to updates), got {update_freq}")
        self.update_freq = int(update_freq[0])

    @classmethod
    def setup_task(cls, cfg, **kwargs):
        """Loading a checkpoint for inference (``from_checkpoint``, e.g. ``xsl-eval`` pointing
        ``data`` at the dictionary's directory) needs only the dictionary, not the corpus."""
        data = cfg.data
        if kwargs.get("from_checkpoint") and not any(
                os.path.isfile(os.path.join(data, name, "train.idx"))
                for name in (os.listdir(data) if os.path.isdir(data) else [])):
            dict_path = os.path.join(data, "dict.txt")
            if not os.path.isfile(dict_path):
                raise FileNotFoundError(f"{dict_path}: dictionary not found")
            return cls(cfg, Dictionary.load(dict_path), inference_only=True)
        return cls(cfg, cls.load_dict(cfg))

    @classmethod
    def load_dict(cls, cfg):
        languages = discover_languages(cfg.data, cfg.languages)
        dict_path = os.path.join(cfg.data, "dict.txt")
        if not os.path.isfile(dict_path):
            dict_path = os.path.join(cfg.data, languages[0], "dict.txt")
            if not os.path.isfile(dict_path):
                raise FileNotFoundError(f"{os.path.join(cfg.data, 'dict.txt')}: dictionary not found")
        check_language_dirs(cfg.data, languages, dict_path)
        dictionary = Dictionary.load(dict_path)
        logger.info("dictionary: %d types (%s); languages: %s", len(dictionary), dict_path, languages)
        return dictionary

    # ---------------------------------------------------------------- data

    def _split_languages(self, split: str) -> List[str]:
        for lang in self.languages:
            if split.endswith("_" + lang):
                return [lang]
        return list(self.languages)

    def load_dataset(self, split, epoch=1, combine=False, **kwargs):
        languages = self._split_languages(split)
        base_split = split[: -len(languages[0]) - 1] if len(languages) == 1 and split.endswith(
            "_" + languages[0]) else split
        per_language = []
        for lang in languages:
            key = f"{lang}/{base_split}"
            try:
                super().load_dataset(key, epoch=1, combine=combine)
            except FileNotFoundError as error:
                raise FileNotFoundError(
                    f"{os.path.join(self.cfg.data, key)}: split {base_split!r} of language {lang!r} "
                    f"not found") from error
            per_language.append(self.datasets.pop(key))
        dataset = LanguageConcatDataset(per_language, [self.languages.index(l) for l in languages])
        dataset.language_names = languages
        dataset.is_meta_train = split == self.cfg.train_subset
        if dataset.is_meta_train:
            sizes = [len(d) for d in per_language]
            probs = smoothed_sampling_probs(sizes, self.cfg.multilang_sampling_alpha)
            self.schedule = MetaSchedule(
                languages=tuple(self.languages),
                phase1_language=self.languages.index(self.cfg.meta_phase1_language),
                phase1_updates=self.cfg.meta_phase1_updates,
                ramp_updates=self.cfg.meta_ramp_updates,
                phase2_probs=tuple(float(p) for p in probs),
            )
            logger.info("meta schedule: phase 1 = %s for %d updates, ramp %d; phase-2 sampling "
                        "(alpha %s) %s over training items %s", self.cfg.meta_phase1_language,
                        self.cfg.meta_phase1_updates, self.cfg.meta_ramp_updates,
                        self.cfg.multilang_sampling_alpha,
                        {l: round(float(p), 4) for l, p in zip(self.languages, probs)},
                        dict(zip(self.languages, sizes)))
        self.datasets[split] = dataset

    def _language_batches(self, dataset, max_tokens, max_sentences, max_positions,
                          ignore_invalid_inputs, required_batch_size_multiple, seed):
        out = []
        for name, child in zip(dataset.language_names, dataset.datasets):
            with data_utils.numpy_seed(seed):
                indices = child.ordered_indices()
            if max_positions is not None:
                indices = self.filter_indices_by_size(indices, child, max_positions, ignore_invalid_inputs)
            batches = child.batch_by_size(indices, max_tokens=max_tokens, max_sentences=max_sentences,
                                          required_batch_size_multiple=required_batch_size_multiple)
            if len(batches) == 0:
                raise ValueError(f"{os.path.join(self.cfg.data, name)}: no batches left after "
                                 "dropping over-long examples")
            out.append(batches)
        return out

    def get_batch_iterator(self, dataset, max_tokens=None, max_sentences=None, max_positions=None,
                           ignore_invalid_inputs=False, required_batch_size_multiple=1, seed=1,
                           num_shards=1, shard_id=0, num_workers=0, epoch=1, data_buffer_size=0,
                           disable_iterator_cache=False, skip_remainder_batch=False,
                           grouped_shuffling=False, update_epoch_batch_itr=False):
        if not isinstance(dataset, LanguageConcatDataset):
            return super().get_batch_iterator(
                dataset, max_tokens, max_sentences, max_positions, ignore_invalid_inputs,
                required_batch_size_multiple, seed, num_shards, shard_id, num_workers, epoch,
                data_buffer_size, disable_iterator_cache, skip_remainder_batch,
                grouped_shuffling, update_epoch_batch_itr)
        dataset.set_epoch(epoch)
        # fixed per-language batches (the same every epoch): the plan only reorders them
        language_batches = self._language_batches(
            dataset, max_tokens, max_sentences, max_positions, ignore_invalid_inputs,
            required_batch_size_multiple, self.cfg.seed)
        if dataset.is_meta_train:
            batches_per_update = num_shards * self.update_freq
            per_epoch = self.cfg.meta_epoch_batches or sum(len(b) for b in language_batches)
            per_epoch = -(-per_epoch // batches_per_update) * batches_per_update
            self._plan = MetaBatchPlan(self.schedule, language_batches, dataset.offsets, per_epoch,
                                       batches_per_update, self.cfg.seed)
            self._record_schedule_state()
            self._check_resumed_schedule()
            plan = self._plan
            batch_sampler = lambda _dataset, ep: plan.batches(ep)  # noqa: E731
            logger.info("meta schedule: %d batches per epoch, %d per update (%d ranks x update "
                        "freq %d)", per_epoch, batches_per_update, num_shards, self.update_freq)
        else:
            batch_sampler = [b + off for b, off in
                             ((np.asarray(x, dtype=np.int64), dataset.offsets[i])
                              for i, lb in enumerate(language_batches) for x in lb)]
        return iterators.EpochBatchIterator(
            dataset=dataset, collate_fn=dataset.collater, batch_sampler=batch_sampler, seed=seed,
            num_shards=num_shards, shard_id=shard_id, num_workers=num_workers, epoch=epoch,
            buffer_size=data_buffer_size, disable_shuffling=True,
            skip_remainder_batch=False, reuse_dataloader=getattr(self.cfg, "reuse_dataloader", True),
            persistent_workers=getattr(self.cfg, "persistent_workers", True),
        )

    # ---------------------------------------------------------------- state

    def _schedule_signature(self) -> dict:
        return {
            "languages": list(self.languages),
            "phase1_language": self.cfg.meta_phase1_language,
            "phase1_updates": int(self.cfg.meta_phase1_updates),
            "ramp_updates": int(self.cfg.meta_ramp_updates),
            "alpha": float(self.cfg.multilang_sampling_alpha),
            "phase2_probs": [round(p, 8) for p in self.schedule.phase2_probs],
            "seed": int(self.cfg.seed),
            "batches_per_epoch": int(self._plan.batches_per_epoch),
            "batches_per_update": int(self._plan.batches_per_update),
        }

    def _record_schedule_state(self, update: int = 0) -> None:
        probs = self.schedule.probabilities(update)[0]
        self.state.merge_state_dict({STATE_KEY: {
            "schedule": self._schedule_signature(),
            "update": int(update),
            "phase": self.schedule.phase(update),
            "mix": float(self.schedule.mix(update)),
            "probabilities": {l: float(p) for l, p in zip(self.languages, probs)},
            "optimizer_reset_done": self._optimizer_reset_done,
        }})

    def _resume_checkpoint_path(self):
        restore = self.cfg.restore_file or "checkpoint_last.pt"
        if restore == "checkpoint_last.pt":
            restore = os.path.join(self.cfg.save_dir or ".", restore)
        return restore if os.path.isfile(restore) else None

    def _check_resumed_schedule(self) -> None:
        """A run resumed from a checkpoint of this task must use the same schedule: its data
        order is recomputed from it, so a changed schedule would silently change the data."""
        path = self._resume_checkpoint_path()
        if path is None or self.cfg.reset_dataloader:
            return
        try:
            state = torch.load(path, map_location="cpu", weights_only=False, mmap=True)
        except Exception:  # fairseq itself reports an unreadable checkpoint
            return
        saved = (state.get("task_state") or {}).get(STATE_KEY)
        if not saved:
            return
        current = self._schedule_signature()
        changed = {k: (saved["schedule"].get(k), v) for k, v in current.items()
                   if saved["schedule"].get(k) != v}
        if changed:
            raise ValueError(
                f"{path}: resuming a meta-pretraining run with a different schedule "
                f"(saved vs now: {changed}); pass --reset-dataloader to start the new schedule "
                "from this checkpoint on purpose")
        self._optimizer_reset_done = bool(saved.get("optimizer_reset_done", False))
        logger.info("resuming meta schedule from %s: update %s, phase %s, mix %.3f", path,
                    saved.get("update"), saved.get("phase"), saved.get("mix", 0.0))

    # ---------------------------------------------------------------- training

    def _maybe_reset_optimizer(self, optimizer, update_num: int) -> None:
        if (not self.cfg.meta_reset_optimizer or self._optimizer_reset_done
                or self.cfg.meta_phase1_updates <= 0 or update_num != self.cfg.meta_phase1_updates):
            return
        inner = optimizer
        while not isinstance(inner, torch.optim.Optimizer) and hasattr(inner, "optimizer"):
            inner = inner.optimizer
        if isinstance(inner, torch.optim.Optimizer):
            inner.state.clear()
            logger.info("meta schedule: optimizer state cleared at update %d (phase 2 starts)",
                        update_num)
        self._optimizer_reset_done = True

    def _rewarmup_scale(self, optimizer, update_num: int) -> float:
        """Scale the LR the scheduler set for this update (once per update: with
        --update-freq the task sees each update several times)."""
        n, w = self.cfg.meta_phase1_updates, self.cfg.meta_rewarmup_updates
        if w <= 0 or n <= 0 or update_num < n:
            return 1.0
        scale = min(1.0, (update_num - n + 1) / w)
        if scale < 1.0 and self._rewarmed_update != update_num:
            optimizer.set_lr(optimizer.get_lr() * scale)
            self._rewarmed_update = update_num
        return scale

    def train_step(self, sample, model, criterion, optimizer, update_num, ignore_grad=False):
        self._maybe_reset_optimizer(optimizer, update_num)
        lr_scale = self._rewarmup_scale(optimizer, update_num)
        loss, sample_size, logging_output = super().train_step(
            sample, model, criterion, optimizer, update_num, ignore_grad)
        if self.schedule is not None:
            probs = self.schedule.probabilities(update_num)[0]
            logging_output["meta_count"] = 1
            logging_output["meta_phase"] = self.schedule.phase(update_num)
            logging_output["meta_mix"] = float(self.schedule.mix(update_num))
            logging_output["meta_lr_scale"] = lr_scale
            logging_output["meta_lr"] = float(optimizer.get_lr())
            for lang, p in zip(self.languages, probs):
                logging_output[f"meta_prob_{lang}"] = float(p)
            self._record_schedule_state(update_num)
        return loss, sample_size, logging_output

    def reduce_metrics(self, logging_outputs, criterion):
        super().reduce_metrics(logging_outputs, criterion)
        count = sum(log.get("meta_count", 0) for log in logging_outputs)
        if count <= 0:
            return
        keys = ["meta_phase", "meta_mix", "meta_lr_scale", "meta_lr"] + [f"meta_prob_{lang}" for lang in self.languages]
        for key in keys:
            value = sum(log.get(key, 0) for log in logging_outputs) / count
            metrics.log_scalar(key, value, count, round=8 if key == "meta_lr" else 4)
