"""Meta-pretraining schedules (xsl_meta_mlm): the switch, the sampling formula, exact resume
after SIGKILL in either phase, real fairseq-train runs, bad input, and --trainable-parameters."""
import math
import os
import re
import signal
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

import xsl_fairseq  # noqa: F401  (registers the plugin for the in-process tests)
from conftest import BIN_DIR, REPO_ROOT, build_meta_per_language, run_tool
from test_train import train_logs
from xsl_fairseq.data.meta_schedule import MetaBatchPlan, MetaSchedule, smoothed_sampling_probs

PHASE1_UPDATES = 10
MAX_UPDATE = 40
RESTART_ARGS = ["--meta-reset-optimizer", "--meta-rewarmup-updates", 4]


# ------------------------------------------------------------------ schedule math (no data)

def test_sampling_probabilities_follow_the_smoothing_formula():
    sizes = [1000, 100, 10]
    for alpha in (0.3, 0.7, 1.0, 0.0):
        p = np.array(sizes, dtype=float) / sum(sizes)
        expected = p ** alpha / (p ** alpha).sum()
        assert np.allclose(smoothed_sampling_probs(sizes, alpha), expected)
    assert np.allclose(smoothed_sampling_probs(sizes, 1.0), [1000 / 1110, 100 / 1110, 10 / 1110])
    assert np.allclose(smoothed_sampling_probs(sizes, 0.0), [1 / 3] * 3)
    with pytest.raises(ValueError, match="needs training data"):
        smoothed_sampling_probs([5, 0], 0.3)


def make_schedule(n=5, ramp=0, probs=(0.5, 0.3, 0.2)):
    return MetaSchedule(languages=("de", "en", "ru"), phase1_language=1, phase1_updates=n,
                        ramp_updates=ramp, phase2_probs=probs)


def test_switch_at_exactly_update_n_and_ramp_fraction():
    hard = make_schedule(n=5)
    assert hard.mix(np.arange(8)).tolist() == [0, 0, 0, 0, 0, 1, 1, 1]
    assert [hard.phase(u) for u in (4, 5)] == [1, 2]
    assert hard.probabilities(4)[0].tolist() == [0.0, 1.0, 0.0]
    assert np.allclose(hard.probabilities(5)[0], [0.5, 0.3, 0.2])
    ramp = make_schedule(n=5, ramp=4)
    assert np.allclose(ramp.mix([4, 5, 6, 7, 8, 100]), [0, 0.25, 0.5, 0.75, 1.0, 1.0])
    # halfway through the ramp: half the phase-1 one-hot plus half the smoothed distribution
    assert np.allclose(ramp.probabilities(6)[0], [0.25, 0.5 + 0.15, 0.1])


def test_batch_plan_is_deterministic_and_matches_the_schedule():
    schedule = make_schedule(n=40)
    language_batches = [[np.arange(i * 2, i * 2 + 2) for i in range(n)] for n in (7, 5, 3)]
    offsets = [0, 100, 200]
    plan = MetaBatchPlan(schedule, language_batches, offsets, batches_per_epoch=2000,
                         batches_per_update=2, seed=3)
    again = MetaBatchPlan(schedule, language_batches, offsets, 2000, 2, seed=3)
    for epoch in (1, 2):
        assert all(np.array_equal(a, b) for a, b in zip(plan.batches(epoch), again.batches(epoch)))
    languages = plan.epoch_languages(1)
    assert (languages[:80] == 1).all()  # updates 0..39 (2 batches each) are phase 1
    counts = np.bincount(languages[80:], minlength=3) / len(languages[80:])
    assert np.allclose(counts, [0.5, 0.3, 0.2], atol=0.03)
    # every batch of a language is used once before any is repeated
    en = [tuple(b) for b, lang in zip(plan.batches(1), languages) if lang == 1][:5]
    assert len(set(en)) == 5 and all(100 <= b[0] < 200 for b in en)
    # another seed gives another order
    other = MetaBatchPlan(schedule, language_batches, offsets, 2000, 2, seed=4)
    assert not np.array_equal(other.epoch_languages(1), languages)


# ------------------------------------------------------------------ real fairseq-train runs

@pytest.fixture(scope="module")
def meta_data_bin(tiny_data_bin, tiny_corpus, tmp_path_factory) -> Path:
    """DATA/{dict.txt,de,en,ru}: Russian has a third of the others' lines (unequal sampling)."""
    return build_meta_per_language(tiny_corpus, tiny_data_bin, tmp_path_factory.mktemp("meta"))


def meta_args(data, save_dir, *extra, max_update=MAX_UPDATE, phase1=PHASE1_UPDATES):
    return [data, "--user-dir", "xsl_fairseq", "--task", "xsl_meta_mlm", "--criterion", "xsl_meta_mlm",
            "--arch", "xsl_roberta_tiny", "--tokens-per-sample", 64, "--sample-break-mode", "complete",
            "--skip-invalid-size-inputs-valid-test", "--optimizer", "adam", "--lr", "2e-3",
            "--lr-scheduler", "inverse_sqrt", "--warmup-updates", 5, "--batch-size", 8,
            "--max-update", max_update, "--meta-phase1-updates", phase1, "--meta-epoch-batches", 12,
            "--cpu", "--num-workers", 0, "--seed", 3, "--log-format", "json", "--log-interval", 1,
            "--save-dir", save_dir, "--no-epoch-checkpoints", "--disable-validation", *extra]


def batch_language(record) -> str:
    """With --log-interval 1 a record is one batch: its language is the one loss_<lang> set."""
    langs = [k[5:] for k, v in record.items()
             if k.startswith("loss_") and v is not None and float(v) > 0]
    assert len(langs) == 1, record
    return langs[0]


@pytest.fixture(scope="module")
def straight_run(meta_data_bin, tmp_path_factory):
    out = tmp_path_factory.mktemp("straight")
    proc = run_tool("fairseq-train", *meta_args(meta_data_bin, out / "ckpt", "--tensorboard-logdir",
                                                out / "tb", *RESTART_ARGS))
    return proc.stdout, train_logs(proc.stdout), out


def test_switch_happens_at_update_n_and_each_phase_loss_falls(straight_run):
    stdout, logs, out = straight_run
    assert [int(r["num_updates"]) for r in logs] == list(range(1, MAX_UPDATE + 1))
    phase1, phase2 = logs[:PHASE1_UPDATES], logs[PHASE1_UPDATES:]
    assert all(batch_language(r) == "en" and r["meta_phase"] == "1" for r in phase1)
    assert all(r["meta_phase"] == "2" and r["meta_mix"] == "1" for r in phase2)
    assert {batch_language(r) for r in phase2} == {"de", "en", "ru"}
    assert "optimizer state cleared at update 10" in stdout
    # LR re-warm-up over the 4 updates after the switch (num_updates k = update k-1); the
    # logged lr of record k is the scheduler's LR for the next update
    scale = {int(r["num_updates"]): float(r["meta_lr_scale"]) for r in logs}
    assert [scale[k] for k in (10, 11, 12, 13, 14, 15)] == [1.0, 0.25, 0.5, 0.75, 1.0, 1.0]
    for k in (11, 12, 15):
        assert math.isclose(float(logs[k - 1]["meta_lr"]), scale[k] * float(logs[k - 2]["lr"]), rel_tol=1e-3)
    # the logged phase-2 probabilities are the formula on the logged corpus sizes
    sizes = eval(re.search(r"over training items (\{.*\})", stdout).group(1))  # noqa: S307
    expected = smoothed_sampling_probs([sizes[k] for k in ("de", "en", "ru")], 0.3)
    logged = [float(phase2[0][f"meta_prob_{k}"]) for k in ("de", "en", "ru")]
    assert np.allclose(logged, expected, atol=1e-4) and expected[2] < expected[0]
    assert mean_loss(phase1[-3:]) < mean_loss(phase1[:3]) - 0.5
    tb = out / "tb" / "train_inner"
    assert list(tb.glob("events.out.tfevents.*"))


def mean_loss(records):
    return sum(float(r["loss"]) for r in records) / len(records)


def test_phase2_alone_is_multilingual_mlm_whose_loss_falls(meta_data_bin, tmp_path):
    """--meta-phase1-updates 0: the single-phase baseline (every batch from the smoothed mix)."""
    logs = train_logs(run_tool("fairseq-train", *meta_args(meta_data_bin, tmp_path / "ckpt",
                                                           max_update=20, phase1=0)).stdout)
    assert all(r["meta_phase"] == "2" for r in logs)
    assert len({batch_language(r) for r in logs}) == 3
    assert mean_loss(logs[-4:]) < mean_loss(logs[:4]) - 0.5


def test_ramp_mixes_at_the_chosen_updates(meta_data_bin, tmp_path):
    proc = run_tool("fairseq-train", *meta_args(meta_data_bin, tmp_path / "ckpt", "--meta-ramp-updates", 4,
                                                max_update=14, phase1=8))
    mix = {int(r["num_updates"]): float(r["meta_mix"]) for r in train_logs(proc.stdout)}
    # num_updates k is update k-1: updates 8, 9, 10, 11 mix 1/4, 2/4, 3/4, 1
    assert [mix[k] for k in (8, 9, 10, 11, 12, 14)] == [0.0, 0.25, 0.5, 0.75, 1.0, 1.0]


def kill_after_checkpoint(args, at_update: int):
    """Start fairseq-train, SIGKILL it as soon as it reports the checkpoint of ``at_update``."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([str(BIN_DIR / "fairseq-train"), *map(str, args)], cwd=REPO_ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    pattern = re.compile(rf"Saved checkpoint .*@ {at_update} updates")
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if pattern.search(line):
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "".join(lines[-30:])


@pytest.mark.parametrize("kill_at", [7, 21], ids=["phase1", "phase2"])
def test_sigkill_and_resume_reproduce_the_uninterrupted_run(straight_run, meta_data_bin, tmp_path, kill_at):
    _, straight, _ = straight_run
    args = meta_args(meta_data_bin, tmp_path / "ckpt", "--save-interval-updates", 7,
                     "--keep-interval-updates", 1, *RESTART_ARGS)
    kill_after_checkpoint(args, kill_at)
    proc = run_tool("fairseq-train", *args)
    start = int(re.search(r"\(epoch \d+ @ (\d+) updates\)", proc.stdout).group(1))
    assert start == kill_at
    assert "resuming meta schedule" in proc.stdout
    resumed = train_logs(proc.stdout)
    expected = straight[start:]
    assert [int(r["num_updates"]) for r in resumed] == [int(r["num_updates"]) for r in expected]
    assert [batch_language(r) for r in resumed] == [batch_language(r) for r in expected]
    assert [r["meta_phase"] for r in resumed] == [r["meta_phase"] for r in expected]
    assert [r["loss"] for r in resumed] == [r["loss"] for r in expected]
    state = torch.load(tmp_path / "ckpt" / "checkpoint_last.pt", weights_only=False)["task_state"]
    assert state["meta_schedule"]["phase"] == 2 and state["meta_schedule"]["update"] == MAX_UPDATE - 1


def test_resume_with_another_schedule_is_an_error(straight_run, meta_data_bin):
    _, _, out = straight_run
    proc = run_tool("fairseq-train", *meta_args(meta_data_bin, out / "ckpt", max_update=MAX_UPDATE + 5,
                                                phase1=5), check=False)
    assert proc.returncode != 0
    assert "checkpoint_last.pt: resuming a meta-pretraining run with a different schedule" in proc.stderr


# ------------------------------------------------------------------ bad input, at setup

def setup_meta_task(data, *extra, max_update=MAX_UPDATE):
    from fairseq import options, tasks
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf

    parser = options.get_training_parser()
    args = options.parse_args_and_arch(parser, [str(data), "--task", "xsl_meta_mlm", "--arch",
                                                "xsl_roberta_tiny", "--max-update", str(max_update),
                                                *map(str, extra)])
    return tasks.setup_task(convert_namespace_to_omegaconf(args).task)


def copy_tree(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


def test_bad_input_is_reported_with_its_path(meta_data_bin, tmp_path):
    task = setup_meta_task(meta_data_bin)
    assert task.languages == ["de", "en", "ru"]
    with pytest.raises(ValueError, match=r"--meta-phase1-updates 50 is beyond --max-update 40"):
        setup_meta_task(meta_data_bin, "--meta-phase1-updates", 50)
    with pytest.raises(ValueError, match=rf"'fr' is not among the language directories of {meta_data_bin}"):
        setup_meta_task(meta_data_bin, "--meta-phase1-language", "fr")

    no_train = copy_tree(meta_data_bin, tmp_path / "no_train")
    (no_train / "de" / "train.bin").unlink()
    with pytest.raises(FileNotFoundError, match=re.escape(str(no_train / "de" / "train.bin"))):
        setup_meta_task(no_train)

    other_dict = copy_tree(meta_data_bin, tmp_path / "other_dict")
    with open(other_dict / "ru" / "dict.txt", "a", encoding="utf-8") as f:
        f.write("extra_piece 1\n")
    with pytest.raises(ValueError, match=re.escape(f"{other_dict / 'ru' / 'dict.txt'} differs from")):
        setup_meta_task(other_dict)

    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="no language directories"):
        setup_meta_task(empty)


def test_binarize_per_language_cli_errors(tmp_path, tiny_data_bin):
    (tmp_path / "notes").write_text("hello\n", encoding="utf-8")
    proc = run_tool("xsl-prep", "binarize-mono", "--per-language", "--input", tmp_path / "notes",
                    "--dict", tiny_data_bin / "dict.txt", "--destdir", tmp_path / "out", check=False)
    assert proc.returncode == 2 and "cannot tell the language; write LANG=PATH" in proc.stderr


# ------------------------------------------------------------------ xsl_roberta --trainable-parameters

def test_trainable_parameters_freezes_all_but_the_lm_head(straight_run, meta_data_bin, tmp_path):
    """Head warm-up as in the e5 recipe: after real updates, every frozen tensor is
    bit-identical to the starting checkpoint and the LM head has moved."""
    _, _, out = straight_run
    start = out / "ckpt" / "checkpoint_last.pt"
    proc = run_tool("fairseq-train", *meta_args(meta_data_bin, tmp_path / "warm", "--finetune-from-model", start,
                                                "--trainable-parameters", r"^encoder\.lm_head\.",
                                                max_update=3, phase1=0))
    assert "training 5 tensors" in proc.stdout  # dense weight + bias, LayerNorm weight + bias, output bias
    before = torch.load(start, weights_only=False)["model"]
    after = torch.load(tmp_path / "warm" / "checkpoint_last.pt", weights_only=False)["model"]
    head = [k for k in after if k.startswith("encoder.lm_head.") and k != "encoder.lm_head.weight"]
    frozen = [k for k in after if k not in head]
    assert frozen and all(torch.equal(before[k], after[k]) for k in frozen)
    assert all(not torch.equal(before[k], after[k]) for k in head)
    assert "encoder.sentence_encoder.embed_tokens.weight" in frozen


def test_trainable_parameters_rejects_bad_patterns(meta_data_bin):
    from fairseq import options
    from xsl_fairseq.models.xsl_roberta import XslRobertaModel

    task = setup_meta_task(meta_data_bin)
    for pattern, message in (("(", "not a regular expression"), ("^nothing$", "matches no parameter")):
        args = options.parse_args_and_arch(options.get_training_parser(), [
            str(meta_data_bin), "--task", "xsl_meta_mlm", "--arch", "xsl_roberta_tiny",
            "--trainable-parameters", pattern])
        with pytest.raises(ValueError, match=message):
            XslRobertaModel.build_model(args, task)


def test_checkpoint_loads_for_inference_with_only_a_dictionary(straight_run, meta_data_bin, tmp_path):
    """xsl-eval loads checkpoints with ``data`` pointed at the dictionary's directory."""
    import shutil

    from fairseq import checkpoint_utils

    _, _, out = straight_run
    shutil.copyfile(meta_data_bin / "dict.txt", tmp_path / "dict.txt")
    models, _, task = checkpoint_utils.load_model_ensemble_and_task(
        [str(out / "ckpt" / "checkpoint_last.pt")], arg_overrides={"data": str(tmp_path)})
    assert len(task.dictionary) == models[0].encoder.sentence_encoder.embed_tokens.num_embeddings
