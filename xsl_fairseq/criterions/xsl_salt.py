"""``xsl_salt`` (sentence-pair classification) and ``xsl_salt_token_labeling`` (NER, POS):
SALT self-augmented fine-tuning ("Self-Augmentation Improves Zero-Shot Cross-Lingual Transfer", Wang et al.,
IJCNLP-AACL 2023, arXiv 2309.10891).

Following the paper's description; details not published (the authors' repository has no
code and the method section could not be read; see ``xsl_fairseq/modules/salt.py`` for the
assumed design). Per training batch:

1. **Substitutes** (``--salt-substitutes online``, default): the chosen positions
   (``--salt-cs-prob`` code-switched, ``--salt-mix-prob`` mixed, disjoint, never special
   tokens or padding) are replaced by ``<mask>`` and the model being fine-tuned predicts them
   with its own MLM head: one extra forward without gradient, in eval mode unless
   ``--salt-substitute-dropout``. The top ``--salt-topk`` tokens, original and special tokens
   excluded, are the substitutes. ``--salt-random-substitutes`` draws them uniformly instead
   (the ablation showing that the model's predictions matter). ``--salt-substitutes offline``
   reads a code-switched copy written once from the initial model (``xsl-prep salt-augment``,
   task option ``--salt-augmented-data``); offline copies hold tokens, so mixup is online only,
   and ``--salt-cs-prob/--salt-topk/--salt-cs-sampling/--salt-random-substitutes`` describe how the
   copy was written (``xsl-eval --salt offline`` writes it with them).
2. **Augmented input**: code-switched positions take one substitute (sampled from the
   top-k weights, or ``--salt-cs-sampling argmax``); mixed positions take
   ``λ E[x] + (1 - λ) Σ p̂_k E[w_k]`` (``--salt-mix-lambda``, or Beta(α, α) with
   ``--salt-mix-alpha``). Every random choice of an example (positions, substitute, λ) is
   drawn from its own generator, seeded by the update's seed and the example's id: an example
   is augmented alike on any number of ranks and in any batch (``tests/test_data_parallel.py``).
3. **Loss** (sum over sentences, as fairseq's ``sentence_prediction``):
   ``CE(clean) + CE(augmented) + w · KL(p_clean.detach() || p_aug)`` with
   ``w = --salt-consistency-weight``. Clean and augmented rows go through the model in one
   forward of 2B rows (one DDP forward; the augmented half costs one extra classification
   forward and backward).

Validation (model in eval mode) scores the clean input only, so valid losses compare with
plain ``sentence_prediction``. Switches for the ablations: code-switching only
(``--salt-mix-prob 0``), mixup only (``--salt-cs-prob 0``), both (default).

**Token labelling** (``xsl_salt_token_labeling``, the same augmentation on
``xsl_token_labeling``'s inputs): augmentation replaces a token in place, so every position
keeps its word's label and the three terms are summed over labelled positions instead of
sentences (``xsl_token_labeling``'s sample size and its loss unit, nats). A code-switched first
sub-token keeps its word's label: the substitute stands for the same word in another language,
which is the point of code-switching. Offline copies are written for sentence pairs only, so
this criterion takes ``--salt-substitutes online``.
"""
import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from fairseq.criterions import register_criterion
from fairseq.criterions.sentence_prediction import SentencePredictionConfig, SentencePredictionCriterion
from fairseq.dataclass import ChoiceEnum, FairseqDataclass
from fairseq.logging import metrics

from ..data.features import IGNORE_LABEL
from ..modules import salt
from .xsl_token_labeling import XslTokenLabelingCriterion, XslTokenLabelingCriterionConfig, token_label_logits


@dataclass
class SaltOptions(FairseqDataclass):
    """SALT's options, shared by the sentence-pair and the token-labelling criterion."""
    salt_cs_prob: float = field(default=0.15, metadata={
        "help": "fraction of real tokens code-switched to one of the model's top-k MLM predictions (unverified default)"})
    salt_mix_prob: float = field(default=0.15, metadata={
        "help": "fraction of real tokens (disjoint from the code-switched ones) whose embedding is mixed with the "
                "weighted embeddings of the top-k predictions (unverified default)"})
    salt_topk: int = field(default=5, metadata={"help": "substitutes per position (unverified default)"})
    salt_cs_sampling: ChoiceEnum(["sample", "argmax"]) = field(default="sample", metadata={
        "help": "code-switch to a substitute drawn from the renormalised top-k probabilities, or to the argmax"})
    salt_mix_lambda: float = field(default=0.5, metadata={
        "help": "weight of the original embedding in mixup (used when --salt-mix-alpha is 0)"})
    salt_mix_alpha: float = field(default=0.0, metadata={
        "help": "> 0: draw the mixup weight per token from Beta(alpha, alpha) instead of --salt-mix-lambda"})
    salt_consistency_weight: float = field(default=1.0, metadata={
        "help": "weight w of KL(p_clean.detach() || p_augmented)"})
    salt_substitutes: ChoiceEnum(["online", "offline"]) = field(default="online", metadata={
        "help": "online: predicted every batch by the model being fine-tuned; offline: a code-switched copy "
                "written once from the initial model (xsl-prep salt-augment; task option --salt-augmented-data)"})
    salt_random_substitutes: bool = field(default=False, metadata={
        "help": "ablation: substitutes drawn uniformly from the vocabulary instead of the MLM head's top-k"})
    salt_substitute_dropout: bool = field(default=False, metadata={
        "help": "predict substitutes with dropout on (default: the MLM pass runs in eval mode)"})


@dataclass
class XslSaltConfig(SentencePredictionConfig, SaltOptions):
    pass


@dataclass
class XslSaltTokenLabelingConfig(XslTokenLabelingCriterionConfig, SaltOptions):
    pass


def validate_salt_config(cfg) -> None:
    """Reject inconsistent SALT options before any data is read."""
    def bad(message):
        raise ValueError(f"xsl_salt: {message}")

    if getattr(cfg, "regression_target", False):
        bad("--regression-target is not supported (SALT's augmented CE needs class labels)")
    for name in ("salt_cs_prob", "salt_mix_prob", "salt_mix_lambda"):
        value = getattr(cfg, name)
        if not 0.0 <= value <= 1.0:
            bad(f"--{name.replace('_', '-')} must lie in [0, 1], got {value}")
    if cfg.salt_cs_prob + cfg.salt_mix_prob > 1.0:
        bad(f"--salt-cs-prob + --salt-mix-prob must be <= 1 (positions are disjoint), got "
            f"{cfg.salt_cs_prob} + {cfg.salt_mix_prob}")
    if cfg.salt_substitutes == "online" and cfg.salt_cs_prob + cfg.salt_mix_prob == 0.0:
        bad("--salt-cs-prob and --salt-mix-prob are both 0: nothing to augment (use --criterion sentence_prediction)")
    if cfg.salt_substitutes == "offline" and cfg.salt_mix_prob > 0:
        bad("--salt-substitutes offline reads a code-switched copy (tokens only, no mixup): pass --salt-mix-prob 0")
    if cfg.salt_topk < 1:
        bad(f"--salt-topk must be >= 1, got {cfg.salt_topk}")
    if cfg.salt_mix_alpha < 0:
        bad(f"--salt-mix-alpha must be >= 0, got {cfg.salt_mix_alpha}")
    if cfg.salt_consistency_weight < 0:
        bad(f"--salt-consistency-weight must be >= 0, got {cfg.salt_consistency_weight}")


class SelfAugmentation:
    """What both SALT criterions share: the special ids and the online augmentation of a batch."""

    def _setup_salt(self, cfg, task) -> None:
        """After ``validate_salt_config(cfg)`` and the criterion's ``nn.Module`` set-up."""
        self.cfg = cfg
        dictionary = task.source_dictionary
        self.mask_idx = dictionary.index("<mask>")
        if self.mask_idx == dictionary.unk():
            raise ValueError("xsl_salt: the dictionary has no <mask> symbol to predict substitutes with")
        self.pad_idx = dictionary.pad()
        self.special_ids = salt.special_token_ids(dictionary)
        self.register_buffer("excluded_vocab", salt.vocabulary_exclusion(len(dictionary), self.special_ids),
                             persistent=False)

    def _augment(self, model, tokens, example_ids=None):
        cfg = self.cfg
        candidates = salt.augmentable_positions(tokens, self.special_ids)
        draws = None
        if example_ids is not None:
            # per-example generators keyed by the update's seed (fairseq sets torch's seed to
            # seed + update before every step, on every rank): the same augmentation of an
            # example on any rank and in any batch; see modules/salt.py
            draws = salt.example_draws(tokens, self.pad_idx, example_ids, torch.initial_seed(), cfg.salt_topk,
                                       cfg.salt_mix_lambda, cfg.salt_mix_alpha)
        chosen = salt.choose_positions(candidates, cfg.salt_cs_prob, cfg.salt_mix_prob,
                                       draw=None if draws is None else draws.position)
        substitutes = salt.predict_substitutes(model, tokens, chosen.any, cfg.salt_topk,
                                          self.excluded_vocab.to(tokens.device), self.mask_idx,
                                          random=cfg.salt_random_substitutes, dropout=cfg.salt_substitute_dropout,
                                          draws=draws)
        augmented, embeddings = salt.build_augmented_input(model, tokens, chosen, substitutes,
                                                      sample_substitute=cfg.salt_cs_sampling == "sample",
                                                      mix_lambda=cfg.salt_mix_lambda, mix_alpha=cfg.salt_mix_alpha,
                                                      draws=draws)
        counts = (chosen.code_switch.sum(), chosen.mixup.sum(), candidates.sum())
        return augmented, embeddings, counts

    @staticmethod
    def _augmented_model_inputs(model, tokens, augmented, embeddings):
        """Clean and augmented rows stacked for one forward (one DDP forward, bigger matmuls)."""
        extra = {}
        if embeddings is not None:
            clean_embeddings = model.encoder.sentence_encoder.embed_tokens(tokens)
            extra["token_embeddings"] = torch.cat([clean_embeddings, embeddings], dim=0)
        return torch.cat([tokens, augmented], dim=0), extra


def log_salt_metrics(logging_outputs, sample_size: float, loss_divisor: float) -> None:
    """The SALT terms per ``sample_size`` unit (divided by ``loss_divisor``: ln 2 for bits)
    and the share of augmentable tokens code-switched and mixed."""
    def total(key):
        return float(sum(log.get(key, 0) for log in logging_outputs))

    for key in ("clean_loss", "augmented_loss", "consistency_kl"):
        metrics.log_scalar(key, total(key) / sample_size / loss_divisor, sample_size, round=3)
    candidates = max(total("salt_candidates"), 1.0)
    metrics.log_scalar("code_switched_pct", 100.0 * total("salt_code_switched") / candidates, candidates, round=1)
    metrics.log_scalar("mixed_pct", 100.0 * total("salt_mixed") / candidates, candidates, round=1)


@register_criterion("xsl_salt", dataclass=XslSaltConfig)
class XslSaltCriterion(SelfAugmentation, SentencePredictionCriterion):
    """CE(clean) + CE(self-augmented) + w KL(p_clean.detach() || p_aug) (see module docstring)."""

    def __init__(self, cfg: XslSaltConfig, task):
        validate_salt_config(cfg)
        super().__init__(cfg, task)
        self._setup_salt(cfg, task)

    def forward(self, model, sample, reduce=True):
        head = self.classification_head_name
        assert hasattr(model, "classification_heads") and head in model.classification_heads, \
            "model must provide sentence classification head for --criterion=xsl_salt"
        net_input = sample["net_input"]
        tokens = net_input["src_tokens"]
        if not model.training:
            logits = model(**net_input, features_only=True, classification_head_name=head)[0]
            targets = model.get_targets(sample, [logits]).view(-1)
            loss = F.nll_loss(F.log_softmax(logits, dim=-1, dtype=torch.float32), targets, reduction="sum")
            zero = torch.zeros((), device=tokens.device)
            return loss, targets.numel(), self._logging(sample, loss, loss, zero, zero, logits, None, targets,
                                                        (zero, zero, zero))
        if self.cfg.salt_substitutes == "offline":
            augmented = sample.get("salt_net_input", {}).get("src_tokens")
            if augmented is None:
                raise ValueError("xsl_salt --salt-substitutes offline: the batch has no augmented copy; "
                                 "train with --task xsl_sentence_prediction --salt-augmented-data DIR")
            if augmented.shape != tokens.shape:
                raise ValueError(f"xsl_salt: augmented batch {tuple(augmented.shape)} does not match the clean "
                                 f"batch {tuple(tokens.shape)}; was the copy written from this data?")
            embeddings = None
            candidates = salt.augmentable_positions(tokens, self.special_ids)
            counts = (augmented.ne(tokens).sum(), torch.zeros((), device=tokens.device), candidates.sum())
        else:
            augmented, embeddings, counts = self._augment(model, tokens, sample.get("id"))

        batch = tokens.size(0)
        both_tokens, extra = self._augmented_model_inputs(model, tokens, augmented, embeddings)
        logits = model(both_tokens, features_only=True, classification_head_name=head, **extra)[0]
        clean_logits, augmented_logits = logits[:batch], logits[batch:]
        targets = model.get_targets(sample, [clean_logits]).view(-1)
        clean_loss = F.nll_loss(F.log_softmax(clean_logits, dim=-1, dtype=torch.float32), targets, reduction="sum")
        augmented_loss = F.nll_loss(F.log_softmax(augmented_logits, dim=-1, dtype=torch.float32), targets,
                                    reduction="sum")
        kl = salt.consistency_kl(clean_logits, augmented_logits)
        loss = clean_loss + augmented_loss + self.cfg.salt_consistency_weight * kl
        return loss, targets.numel(), self._logging(sample, loss, clean_loss, augmented_loss, kl, clean_logits,
                                                    augmented_logits, targets, counts)

    @staticmethod
    def _logging(sample, loss, clean_loss, augmented_loss, kl, clean_logits, augmented_logits, targets, counts):
        ncorrect_augmented = (augmented_logits.argmax(dim=1) == targets).sum() if augmented_logits is not None \
            else torch.zeros((), device=targets.device)
        code_switched, mixed, candidates = counts
        return {
            "loss": loss.data, "clean_loss": clean_loss.data, "augmented_loss": augmented_loss.data,
            "consistency_kl": kl.data,
            "ntokens": sample["ntokens"], "nsentences": targets.numel(), "sample_size": targets.numel(),
            "ncorrect": (clean_logits.argmax(dim=1) == targets).sum(), "ncorrect_augmented": ncorrect_augmented,
            "salt_code_switched": code_switched, "salt_mixed": mixed, "salt_candidates": candidates,
        }

    @staticmethod
    def reduce_metrics(logging_outputs) -> None:
        SentencePredictionCriterion.reduce_metrics(logging_outputs)
        sample_size = max(float(sum(log.get("sample_size", 0) for log in logging_outputs)), 1.0)
        log_salt_metrics(logging_outputs, sample_size, math.log(2))
        correct = float(sum(log.get("ncorrect_augmented", 0) for log in logging_outputs))
        metrics.log_scalar("accuracy_augmented", 100.0 * correct / sample_size, sample_size, round=1)

    @staticmethod
    def logging_outputs_can_be_summed() -> bool:
        return True


@register_criterion("xsl_salt_token_labeling", dataclass=XslSaltTokenLabelingConfig)
class XslSaltTokenLabelingCriterion(SelfAugmentation, XslTokenLabelingCriterion):
    """``xsl_token_labeling`` with SALT: per labelled position, CE(clean) + CE(self-augmented)
    + w KL(p_clean.detach() || p_aug) (see module docstring)."""

    def __init__(self, cfg: XslSaltTokenLabelingConfig, task):
        validate_salt_config(cfg)
        if cfg.salt_substitutes != "online":
            raise ValueError("xsl_salt_token_labeling: offline copies are written for sentence pairs only "
                             "(xsl-prep salt-augment); use --salt-substitutes online")
        super().__init__(cfg, task)
        self._setup_salt(cfg, task)

    def forward(self, model, sample, reduce=True):
        target = sample["target"]
        labelled = target.ne(IGNORE_LABEL)
        labels = target[labelled]
        net_input = sample["net_input"]
        if not model.training:
            logits = token_label_logits(model, net_input, self.head_name)[labelled]
            loss = F.cross_entropy(logits, labels, reduction="sum")
            zero = torch.zeros((), device=labels.device)
            return loss, labelled.sum(), self._logging(sample, labels, loss, loss, zero, zero, logits, None,
                                                       (zero, zero, zero))
        tokens = net_input["src_tokens"]
        augmented, embeddings, counts = self._augment(model, tokens, sample.get("id"))
        both_tokens, extra = self._augmented_model_inputs(model, tokens, augmented, embeddings)
        logits = token_label_logits(model, {"src_tokens": both_tokens, **extra}, self.head_name)
        # augmentation is in place, so the augmented rows keep the clean rows' labelled positions
        clean_logits, augmented_logits = logits[: tokens.size(0)][labelled], logits[tokens.size(0):][labelled]
        clean_loss = F.cross_entropy(clean_logits, labels, reduction="sum")
        augmented_loss = F.cross_entropy(augmented_logits, labels, reduction="sum")
        kl = salt.consistency_kl(clean_logits, augmented_logits)
        loss = clean_loss + augmented_loss + self.cfg.salt_consistency_weight * kl
        return loss, labelled.sum(), self._logging(sample, labels, loss, clean_loss, augmented_loss, kl,
                                                   clean_logits, augmented_logits, counts)

    @staticmethod
    def _logging(sample, labels, loss, clean_loss, augmented_loss, kl, clean_logits, augmented_logits, counts):
        correct_augmented = (augmented_logits.argmax(-1) == labels).sum() if augmented_logits is not None \
            else torch.zeros((), device=labels.device)
        code_switched, mixed, candidates = counts
        return {
            "loss": loss.detach(), "clean_loss": clean_loss.detach(), "augmented_loss": augmented_loss.detach(),
            "consistency_kl": kl.detach(),
            "ntokens": sample["ntokens"], "nsentences": sample["nsentences"], "sample_size": labels.numel(),
            "label_correct": (clean_logits.argmax(-1) == labels).sum(), "label_correct_augmented": correct_augmented,
            "salt_code_switched": code_switched, "salt_mixed": mixed, "salt_candidates": candidates,
        }

    @staticmethod
    def reduce_metrics(logging_outputs) -> None:
        XslTokenLabelingCriterion.reduce_metrics(logging_outputs)
        sample_size = max(float(sum(log.get("sample_size", 0) for log in logging_outputs)), 1.0)
        log_salt_metrics(logging_outputs, sample_size, 1.0)  # nats, as xsl_token_labeling's loss
        correct = float(sum(log.get("label_correct_augmented", 0) for log in logging_outputs))
        metrics.log_scalar("label_acc_augmented", 100.0 * correct / sample_size, sample_size, round=2)

    @staticmethod
    def logging_outputs_can_be_summed() -> bool:
        return True
