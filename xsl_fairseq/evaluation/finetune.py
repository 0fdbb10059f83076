"""Fine-tuning through ``fairseq-train`` (the plugin's registered tasks and criterions).

Each run is a ``fairseq-train`` subprocess, so users see fairseq's own progress and
TensorBoard logs, and every run starts from a clean process (fairseq keeps global
metric state).
"""
import logging
import math
import os
import shlex
import subprocess
import sys
from dataclasses import asdict, dataclass
from typing import Dict, List, Optional

import torch
from tqdm import tqdm

import xsl_fairseq

from .pretrained import PretrainedModel

logger = logging.getLogger(__name__)

PLUGIN_DIR = os.path.dirname(os.path.abspath(xsl_fairseq.__file__))


@dataclass
class FinetuneConfig:
    """Optimisation settings; defaults per task follow XTREME (see ``TASK_DEFAULTS``)."""

    lr: float
    epochs: int
    batch_size: int = 32
    update_freq: int = 1
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    max_seq_length: int = 128
    extra_fairseq_args: str = ""

    def as_dict(self):
        return asdict(self)


# XTREME (Hu et al., 2020) fine-tuning settings for XLM-R base: batch 32, AdamW,
# linear decay; epochs and learning rates per task as in its scripts.
TASK_DEFAULTS = {
    "sentence-pair": dict(lr=2e-5, epochs=5, max_seq_length=128),
    "qa": dict(lr=3e-5, epochs=2, max_seq_length=384),
    "ner": dict(lr=2e-5, epochs=10, max_seq_length=128),
    "pos": dict(lr=2e-5, epochs=10, max_seq_length=128),
}


def finetune(
    pretrained: PretrainedModel,
    data_dir: str,
    save_dir: str,
    task_args: List[str],
    num_train_examples: int,
    config: FinetuneConfig,
    seed: int,
    tensorboard_dir: Optional[str] = None,
    keep_epochs: bool = False,
) -> Dict[int, str]:
    """Run fairseq-train; returns ``{epoch: checkpoint path}``: every epoch's checkpoint with
    ``keep_epochs`` (for model selection), else only the final one."""
    batches_per_epoch = math.ceil(num_train_examples / (config.batch_size * config.update_freq))
    total_updates = max(1, batches_per_epoch * config.epochs)
    argv = [
        sys.executable, "-m", "fairseq_cli.train", data_dir,
        "--user-dir", PLUGIN_DIR,
        *task_args,
        "--arch", pretrained.fairseq_arch(),
        "--max-positions", str(pretrained.max_positions),
        "--extra-special-symbols", pretrained.extra_special_symbols,
        "--finetune-from-model", pretrained.checkpoint,
        "--optimizer", "adam", "--adam-betas", "(0.9,0.98)", "--adam-eps", "1e-6",
        "--weight-decay", str(config.weight_decay), "--clip-norm", "1.0",
        "--lr", str(config.lr), "--lr-scheduler", "polynomial_decay",
        "--total-num-update", str(total_updates),
        "--warmup-updates", str(int(config.warmup_ratio * total_updates)),
        "--max-epoch", str(config.epochs), "--max-update", str(total_updates),
        "--batch-size", str(config.batch_size), "--update-freq", str(config.update_freq),
        "--required-batch-size-multiple", "1",
        "--seed", str(seed), "--num-workers", "0",
        "--save-dir", save_dir,
        *(["--save-interval", "1"] if keep_epochs else ["--no-epoch-checkpoints", "--save-interval", str(config.epochs)]),
        "--no-save-optimizer-state", "--disable-validation",
        "--log-format", "simple", "--log-interval", "10",
    ]
    if tensorboard_dir:
        argv += ["--tensorboard-logdir", tensorboard_dir]
    if not torch.cuda.is_available():
        argv.append("--cpu")
    argv += shlex.split(config.extra_fairseq_args)
    logger.info("fine-tuning: %s", " ".join(shlex.quote(a) for a in argv))
    os.makedirs(save_dir, exist_ok=True)
    checkpoint = os.path.join(save_dir, "checkpoint_last.pt")
    epoch_files = {epoch: os.path.join(save_dir, f"checkpoint{epoch}.pt") for epoch in range(1, config.epochs + 1)}
    for path in [checkpoint, *epoch_files.values()]:
        if os.path.exists(path):
            os.remove(path)  # --finetune-from-model refuses to start beside an old run
    result = subprocess.run(argv)
    if result.returncode != 0 or not os.path.isfile(checkpoint):
        raise RuntimeError(f"fine-tuning failed (exit {result.returncode}); command: {' '.join(argv)}")
    if not keep_epochs:
        return {config.epochs: checkpoint}
    missing = [path for path in epoch_files.values() if not os.path.isfile(path)]
    if missing:
        raise RuntimeError(f"fine-tuning wrote no checkpoint for every epoch (missing {missing})")
    return epoch_files


# Key of the --dev split, kept beside the languages (no language code starts with "_").
DEV = "_dev"


def finetune_and_score(evaluation, seed: int, config: FinetuneConfig, save_dir: str,
                       tensorboard_dir: Optional[str], languages: List[str], task_args: List[str]) -> dict:
    """Fine-tune, choose the checkpoint, score every language.

    Without ``--dev`` the final checkpoint is scored (XTREME's scripts' default). With
    ``--dev FILE`` every epoch's checkpoint is scored on that English dev split by the
    evaluation's headline metric and the best one is used for all languages, as XTREME
    selects checkpoints on English dev; ties go to the earliest epoch (XTREME keeps a
    checkpoint only when it beats the best so far). The winner and every epoch's dev score
    go to ``results.json`` (``model_selection``). Each language's predictions are left in
    ``evaluation.predictions``.
    """
    selecting = bool(getattr(evaluation.args, "dev", None))
    checkpoints = finetune(evaluation.pretrained, evaluation.data_dir, save_dir, task_args,
                           evaluation.num_train, config, seed, tensorboard_dir, keep_epochs=selecting)
    chosen = max(checkpoints)
    if selecting:
        headline = evaluation.metrics_reported()[0]
        dev_scores = {}
        for epoch, path in sorted(checkpoints.items()):
            model, task = load_finetuned(path, evaluation.data_dir)
            dev_scores[epoch] = evaluation.score(model, task, DEV)[0][headline]
            logger.info("seed %s epoch %d: English dev %s %.2f", seed, epoch, headline, dev_scores[epoch])
        chosen = max(sorted(dev_scores), key=lambda epoch: dev_scores[epoch])
        evaluation.extra_report.setdefault("model_selection", {})[str(seed)] = {
            "dev_file": os.path.abspath(evaluation.args.dev), "metric": headline, "best_epoch": chosen,
            "dev_scores": {str(epoch): score for epoch, score in dev_scores.items()}}
        for epoch, path in checkpoints.items():
            if epoch != chosen:
                os.remove(path)  # keep disk use at one fine-tuned model
    model, task = load_finetuned(checkpoints[chosen], evaluation.data_dir)
    results = {}
    for lang in languages:
        scores, evaluation.predictions[lang] = evaluation.score(model, task, lang)
        results[lang] = scores
    return results


def load_finetuned(checkpoint: str, data_dir: str):
    """The fine-tuned model in eval mode, with its task pointed at ``data_dir``."""
    from fairseq import checkpoint_utils

    models, _, task = checkpoint_utils.load_model_ensemble_and_task(
        [checkpoint], arg_overrides={"data": data_dir}
    )
    return models[0].eval(), task


def iterate_batches(task, split: str, max_sentences: int = 64):
    """Batches of ``split`` sorted by length (fast), each with its example ``id``s."""
    task.load_dataset(split)
    iterator = task.get_batch_iterator(
        dataset=task.dataset(split), max_sentences=max_sentences, ignore_invalid_inputs=False,
        required_batch_size_multiple=1, seed=1, num_workers=0,
    ).next_epoch_itr(shuffle=False)
    for sample in tqdm(iterator, desc=f"predicting {split}", leave=False):
        if sample:
            yield sample
