"""Kill-and-resume: a fairseq-train run restarted from a mid-epoch checkpoint continues exactly
like the uninterrupted run, for every task of the plugin that has data order or state.

"Exactly": the same update count, learning rate and batches, and, with fixed seeds (dropout
on), bit-identical per-update JSON records (loss, every loss component, gnorm, batch sizes;
only the timing fields differ) and final weights.

Cheap by design: synthetic data over a 40-word vocabulary (no shared data needed), the tiny
arch, epochs of a few batches, 9 updates with a checkpoint after update 4 (mid-epoch), so that
the resumed run has to skip into the middle of an epoch *and* then start a new one (its
shuffle and its per-epoch masks). One task (xsl_clism) is stopped by a real SIGKILL as soon as
fairseq logs the checkpoint; for the others the restart reads that same checkpoint file from a
fresh save directory, which is what a killed run leaves behind as ``checkpoint_last.pt``
(fairseq writes one state and copies it to every checkpoint name). ``xsl_meta_mlm`` has its own
SIGKILL test in test_meta_pretraining.py (both phases).
"""
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import run_tool, write_toy_sentence_pairs
from test_meta_pretraining import kill_after_checkpoint
from test_mlctl import synthetic_wps
from test_train import train_logs
from xsl_fairseq.data.features import write_sequences

UPDATES = 9
CHECKPOINT_AT = 4
VOCAB = 40  # w0..w39, ids 4..43 after fairseq's specials
FIRST_WORD = 4
TIMING_KEYS = {"wps", "ups", "train_wall", "gb_free", "wall"}


def random_sentences(rng, count, shortest=6, longest=12):
    return [rng.integers(FIRST_WORD, FIRST_WORD + VOCAB, int(rng.integers(shortest, longest + 1))).tolist()
            for _ in range(count)]


def write_dictionary(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "dict.txt").write_text("".join(f"w{i} 1\n" for i in range(VOCAB)), encoding="utf-8")
    return directory


def mono_data(root: Path) -> Path:
    """120 sentences (each ending in </s>) of ``--task xsl_masked_lm`` data."""
    directory = write_dictionary(root / "mono")
    rng = np.random.default_rng(0)
    write_sequences(str(directory / "train"), [s + [2] for s in random_sentences(rng, 120)])
    return directory


def clism_data(root: Path) -> Path:
    """48 pairs with one or two entity spans each, in the layout of xsl-prep clism-binarize."""
    directory = write_dictionary(root / "clism")
    rng = np.random.default_rng(1)
    sources, targets, spans = random_sentences(rng, 48), random_sentences(rng, 48), []
    for src, tgt in zip(sources, targets):
        quads = [[1, 2, 0, 1]]  # source pieces 1..2 -> answer pieces 0..1
        if len(src) > 6:
            quads.append([4, 4, len(tgt) - 2, len(tgt) - 1])
        spans.append([v for quad in quads for v in quad])
    for part, rows in (("src", sources), ("tgt", targets), ("spans", spans)):
        write_sequences(str(directory / f"train.{part}"), rows)
    return directory


def trelm_data(root: Path) -> Path:
    """48 word-aligned pairs in the layout of xsl-prep trelm-align (alignment: per token the
    position on the other side, -1 = unaligned)."""
    directory = write_dictionary(root / "trelm")
    rng = np.random.default_rng(2)
    sources, targets = random_sentences(rng, 48), random_sentences(rng, 48)

    def links(rows, other):
        return [[int(rng.integers(-1, len(o))) for _ in row] for row, o in zip(rows, other)]

    for part, rows in (("src", sources), ("tgt", targets), ("align", links(targets, sources)),
                       ("align_rev", links(sources, targets))):
        write_sequences(str(directory / f"train.{part}"), rows)
    return directory


def tagging_data(root: Path) -> Path:
    """40 tagged sentences in the layout xsl-eval ner/pos writes for ``--task xsl_token_labeling``
    (its batch order is the one ``xsl_span_qa`` uses too)."""
    directory = write_dictionary(root / "tags")
    (directory / "labels.txt").write_text("O\nB-PER\nI-PER\n", encoding="utf-8")
    rng = np.random.default_rng(3)
    sentences = random_sentences(rng, 40)
    write_sequences(str(directory / "train.tokens"), [[0, *s, 2] for s in sentences])
    write_sequences(str(directory / "train.labels"),
                    [[-1, *rng.integers(0, 3, len(s)).tolist(), -1] for s in sentences])
    return directory


COMMON = ["--user-dir", "xsl_fairseq", "--optimizer", "adam", "--lr", "1e-3", "--lr-scheduler", "inverse_sqrt",
          "--warmup-updates", 6, "--max-update", UPDATES, "--save-interval-updates", CHECKPOINT_AT,
          "--required-batch-size-multiple", 1, "--cpu", "--num-workers", 0, "--seed", 3, "--log-format", "json",
          "--log-interval", 1, "--no-epoch-checkpoints", "--disable-validation"]
SENTENCE_PAIRS = ["--task", "xsl_sentence_prediction", "--num-classes", 2, "--init-token", 0,
                  "--separator-token", 2, "--arch", "xsl_roberta_tiny", "--max-positions", 32, "--batch-size", 8]

# task id -> (data builder, task/criterion/arch options); every epoch is a few batches
TASKS = {
    "xsl_masked_lm": (mono_data, ["--task", "xsl_masked_lm", "--criterion", "xsl_masked_lm", "--arch",
                                  "xsl_roberta_tiny", "--tokens-per-sample", 32, "--sample-break-mode", "complete",
                                  "--batch-size", 8]),
    "xsl_clism": (clism_data, ["--task", "xsl_clism", "--criterion", "xsl_clism", "--arch", "xsl_roberta_tiny",
                               "--batch-size", 8]),
    "xsl_mlctl": (lambda root: synthetic_wps(root / "wps", pairs=[2, 1, 3, 1, 2, 1, 1, 2, 3, 1, 1, 2]),
                  ["--task", "xsl_mlctl", "--criterion", "xsl_mlctl", "--arch", "xsl_roberta_tiny",
                   "--mask-prob", 0.3, "--batch-size", 4]),
    "xsl_trelm_cdlm": (trelm_data, ["--task", "xsl_trelm_cdlm", "--criterion", "xsl_trelm_cdlm",
                                    "--trelm-stage", "upper", "--arch", "xsl_trelm_tiny", "--max-positions", 64,
                                    "--batch-size", 8]),
    "xsl_token_labeling": (tagging_data, ["--task", "xsl_token_labeling", "--criterion", "xsl_token_labeling",
                                          "--arch", "xsl_roberta_tiny", "--max-positions", 32, "--batch-size", 8]),
    "xsl_sentence_prediction": (lambda root: write_toy_sentence_pairs(root / "pairs", examples=40),
                                [*SENTENCE_PAIRS, "--criterion", "sentence_prediction"]),
    "xsl_sentence_prediction+xsl_salt": (lambda root: write_toy_sentence_pairs(root / "pairs", examples=40),
                                         [*SENTENCE_PAIRS, "--criterion", "xsl_salt", "--salt-topk", 3]),
}


def train_args(task: str, data: Path, save_dir: Path) -> list:
    return [data, *TASKS[task][1], *COMMON, "--save-dir", save_dir]


def comparable(records):
    return [{k: v for k, v in record.items() if k not in TIMING_KEYS} for record in records]


def final_weights(save_dir: Path) -> dict:
    return torch.load(save_dir / "checkpoint_last.pt", map_location="cpu", weights_only=False)["model"]


def assert_resumed_run_repeats_the_straight_one(straight_stdout, straight_dir, resumed_stdout, resumed_dir):
    straight, resumed = train_logs(straight_stdout), train_logs(resumed_stdout)
    assert [int(r["num_updates"]) for r in straight] == list(range(1, UPDATES + 1))
    # the design is exercised: the checkpoint lies inside an epoch, and the run starts another one
    epochs = [int(r["epoch"]) for r in straight]
    assert epochs[CHECKPOINT_AT - 1] == epochs[CHECKPOINT_AT] < epochs[-1], epochs
    assert f"(epoch {epochs[CHECKPOINT_AT - 1]} @ {CHECKPOINT_AT} updates)" in resumed_stdout
    # update count, learning rate, batch sizes, every loss component, gnorm: all bit-identical
    assert comparable(resumed) == comparable(straight[CHECKPOINT_AT:])
    ours, theirs = final_weights(resumed_dir), final_weights(straight_dir)
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)


def interval_checkpoint(save_dir: Path) -> Path:
    (path,) = save_dir.glob(f"checkpoint_*_{CHECKPOINT_AT}.pt")
    return path


@pytest.mark.parametrize("task", [t for t in TASKS if t != "xsl_clism"])
def test_restart_from_a_mid_epoch_checkpoint_repeats_the_uninterrupted_run(task, tmp_path):
    data = TASKS[task][0](tmp_path)
    straight = run_tool("fairseq-train", *train_args(task, data, tmp_path / "straight"))
    # what a run killed right after that save leaves as checkpoint_last.pt
    (tmp_path / "resumed").mkdir()
    shutil.copy(interval_checkpoint(tmp_path / "straight"), tmp_path / "resumed" / "checkpoint_last.pt")
    resumed = run_tool("fairseq-train", *train_args(task, data, tmp_path / "resumed"))
    assert_resumed_run_repeats_the_straight_one(straight.stdout, tmp_path / "straight",
                                                resumed.stdout, tmp_path / "resumed")


def test_sigkill_right_after_a_checkpoint_then_restart_repeats_the_uninterrupted_run(tmp_path):
    data = clism_data(tmp_path)
    straight = run_tool("fairseq-train", *train_args("xsl_clism", data, tmp_path / "straight"))
    args = train_args("xsl_clism", data, tmp_path / "killed")
    kill_after_checkpoint(args, CHECKPOINT_AT)  # asserts it died of the SIGKILL
    resumed = run_tool("fairseq-train", *args)
    assert_resumed_run_repeats_the_straight_one(straight.stdout, tmp_path / "straight",
                                                resumed.stdout, tmp_path / "killed")
