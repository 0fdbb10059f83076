"""End-to-end fairseq-train runs through --user-dir (subprocess, like fairseq's test_binaries)."""
import json
import re
from pathlib import Path

import torch

import xsl_fairseq
from conftest import run_tool

INSTALLED_PACKAGE_DIR = Path(xsl_fairseq.__file__).resolve().parent
TINY_SHAPE = ["--encoder-layers", 2, "--encoder-embed-dim", 128,
              "--encoder-ffn-embed-dim", 512, "--encoder-attention-heads", 2]


def mlm_args(data_bin, save_dir, max_update, *extra, user_dir="xsl_fairseq",
             task="xsl_masked_lm", criterion="xsl_masked_lm", arch="xsl_roberta_tiny"):
    args = [data_bin / "mono", "--task", task, "--criterion", criterion, "--arch", arch,
            "--tokens-per-sample", 64, "--sample-break-mode", "complete",
            "--skip-invalid-size-inputs-valid-test",
            "--optimizer", "adam", "--lr", "1e-3", "--lr-scheduler", "inverse_sqrt",
            "--warmup-updates", 10, "--batch-size", 16, "--max-update", max_update,
            "--cpu", "--num-workers", 0, "--seed", 3, "--log-format", "json", "--log-interval", 5,
            "--save-dir", save_dir, "--no-epoch-checkpoints", "--disable-validation", *extra]
    if user_dir is not None:
        args += ["--user-dir", user_dir]
    return args


def train_logs(stdout: str):
    """The train_inner JSON records fairseq prints every --log-interval updates."""
    return [json.loads(m) for m in re.findall(r"\| train_inner \| (\{.*\})", stdout)]


def test_mlm_loss_falls_and_tensorboard_is_written(tiny_data_bin, tmp_path):
    proc = run_tool("fairseq-train", *mlm_args(tiny_data_bin, tmp_path / "ckpt", 80,
                                               "--tensorboard-logdir", tmp_path / "tb"))
    logs = train_logs(proc.stdout)
    assert len(logs) == 16
    first, last = float(logs[0]["loss"]), float(logs[-1]["loss"])
    assert last < first - 1.0, (first, last)
    assert "mlm_acc" in logs[-1]
    assert list((tmp_path / "tb" / "train_inner").glob("events.out.tfevents.*"))
    assert (tmp_path / "ckpt" / "checkpoint_last.pt").is_file()


def test_resume_continues_update_count_with_installed_user_dir(tiny_data_bin, tmp_path):
    user_dir = INSTALLED_PACKAGE_DIR  # --user-dir naming the installed package, not the checkout
    straight = train_logs(run_tool("fairseq-train", *mlm_args(
        tiny_data_bin, tmp_path / "straight", 30, user_dir=user_dir)).stdout)
    run_tool("fairseq-train", *mlm_args(tiny_data_bin, tmp_path / "resumed", 20, user_dir=user_dir))
    proc = run_tool("fairseq-train", *mlm_args(tiny_data_bin, tmp_path / "resumed", 30, user_dir=user_dir))
    assert "(epoch 1 @ 20 updates)" in proc.stdout
    resumed = train_logs(proc.stdout)
    assert [int(r["num_updates"]) for r in resumed] == [25, 30]
    # the interrupted run reproduces the uninterrupted one
    assert [r["loss"] for r in resumed] == [r["loss"] for r in straight[-2:]]


def test_finetune_from_official_roberta_checkpoint_adds_que(tiny_data_bin, tmp_path):
    # An XLM-R/RoBERTa-shaped checkpoint written by stock fairseq (no plugin, no [QUE]).
    run_tool("fairseq-train", *mlm_args(tiny_data_bin, tmp_path / "official", 5, *TINY_SHAPE,
                                        user_dir=None, task="masked_lm", criterion="masked_lm",
                                        arch="roberta"))
    official = tmp_path / "official" / "checkpoint_last.pt"
    proc = run_tool("fairseq-train", *mlm_args(
        tiny_data_bin, tmp_path / "plugin", 10, "--extra-special-symbols", "[QUE]",
        "--finetune-from-model", official))
    assert "vocabulary grown by 1 rows" in proc.stdout

    from fairseq import checkpoint_utils

    models, _, task = checkpoint_utils.load_model_ensemble_and_task(
        [str(tmp_path / "plugin" / "checkpoint_last.pt")])
    que = task.dictionary.index("[QUE]")
    assert que == len(task.dictionary) - 1 != task.dictionary.unk()
    assert models[0].encoder.sentence_encoder.embed_tokens.num_embeddings == len(task.dictionary)
    source = torch.load(official, weights_only=False)["model"]
    assert source["encoder.sentence_encoder.embed_tokens.weight"].shape[0] == len(task.dictionary) - 1
