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
from typing import List, Optional

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
) -> str:
    """Run fairseq-train and return the path of the final checkpoint."""
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
        "--save-dir", save_dir, "--no-epoch-checkpoints", "--save-interval", str(config.epochs),
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
    if os.path.exists(checkpoint):
        os.remove(checkpoint)  # --finetune-from-model refuses to start beside an old run
    result = subprocess.run(argv)
    if result.returncode != 0 or not os.path.isfile(checkpoint):
        raise RuntimeError(f"fine-tuning failed (exit {result.returncode}); command: {' '.join(argv)}")
    return checkpoint


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
