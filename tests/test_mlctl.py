"""ML-CTL: pooling, the xsl_mlctl task and criterion against hand computation, cross-rank
training through fairseq-train, a real run whose loss falls, and retrieval with the ML-CTL vector."""
import json
import math
import os
import re
import socket
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

import xsl_fairseq.criterions.xsl_mlctl as mlctl_criterion_module
from conftest import BIN_DIR, REPO_ROOT, run_tool
from xsl_fairseq.data.features import write_sequences
from xsl_fairseq.modules.mlctl import MLCTL_HEAD, sentence_representation
from xsl_fairseq.modules.pooling import avg_first_last, encoder_hidden_states, span_mask

VOCAB = 40  # synthetic symbols w0..w39


def synthetic_wps(directory: Path, pairs, seed=0) -> Path:
    """A data dir in the layout of xsl-prep mlctl-wps with random sentences.

    ``pairs``: for each sentence pair, the number of samples cut from it."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "dict.txt").write_text("".join(f"w{i} 1\n" for i in range(VOCAB)), encoding="utf-8")
    rng = np.random.default_rng(seed)
    first_symbol = 4  # after <s> <pad> </s> <unk>
    xs, ys, rows = [], [], []
    for pair, samples in enumerate(pairs):
        x_len, y_len = rng.integers(8, 14), rng.integers(8, 14)
        xs.append([0, *rng.integers(first_symbol, first_symbol + VOCAB, x_len), 2])
        ys.append([0, *rng.integers(first_symbol, first_symbol + VOCAB, y_len), 2])
        for _ in range(samples):
            xs_, ys_ = int(rng.integers(1, x_len)), int(rng.integers(1, y_len))
            rows.append([pair, xs_, min(xs_ + int(rng.integers(0, 3)), x_len), ys_,
                         min(ys_ + int(rng.integers(0, 3)), y_len), 0])
    write_sequences(str(directory / "train.x.tokens"), xs)
    write_sequences(str(directory / "train.y.tokens"), ys)
    np.save(directory / "train.wps.npy", np.asarray(rows, dtype=np.int64))
    return directory


def build(data_dir, *extra):
    """Task, model (tiny, no dropout) and criterion as fairseq-train builds them."""
    from fairseq import options, tasks
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf

    parser = options.get_training_parser()
    args = options.parse_args_and_arch(parser, [
        str(data_dir), "--user-dir", str(REPO_ROOT / "xsl_fairseq"), "--task", "xsl_mlctl",
        "--criterion", "xsl_mlctl", "--arch", "xsl_roberta_tiny", "--dropout", "0", "--attention-dropout", "0",
        "--cpu", "--seed", "5", *map(str, extra)])
    cfg = convert_namespace_to_omegaconf(args)
    torch.manual_seed(5)
    task = tasks.setup_task(cfg.task)
    model = task.build_model(cfg.model)
    return task, model, task.build_criterion(cfg.criterion)


def test_avg_first_last_and_span_mask():
    hidden = [torch.full((1, 4, 2), 100.0), torch.arange(8.0).view(1, 4, 2), torch.zeros(1, 4, 2),
              torch.ones(1, 4, 2) * torch.tensor([1.0, 3.0])]
    tokens = torch.tensor([[0, 7, 8, 1]])  # last position is padding (pad = 1)
    spans = torch.tensor([[1, 2]])
    assert span_mask(tokens, spans).tolist() == [[False, True, True, False]]
    sentence = avg_first_last(hidden, tokens.ne(1))
    # layer 1 (not the embeddings, layer 0) mean over 3 tokens + last layer mean; summed, not halved
    assert sentence.tolist() == [[2.0 + 1.0, 3.0 + 3.0]]
    word = avg_first_last(hidden, span_mask(tokens, spans))
    assert word.tolist() == [[3.0 + 1.0, 4.0 + 3.0]]


def _hand_loss(model, sample, levels, kind, symmetric, keep_same_pair, temperature=0.07, alpha=0.1):
    """The ML-CTL objective written out row by row with Python loops (no batching, no padding)."""
    pad = 1
    head = model.task_heads[MLCTL_HEAD]

    def vector(tokens, span):
        tokens = tokens[tokens.ne(pad)].unsqueeze(0)  # unpadded single row
        states = encoder_hidden_states(model, tokens)
        length = tokens.size(1)
        sentence = sum(states[1][0, t] for t in range(length)) / length \
            + sum(states[-1][0, t] for t in range(length)) / length
        width = span[1] - span[0] + 1
        word = sum(states[1][0, t] for t in range(span[0], span[1] + 1)) / width \
            + sum(states[-1][0, t] for t in range(span[0], span[1] + 1)) / width
        parts = {"sentence": [sentence], "word": [word], "both": [sentence, word]}[levels]
        return head(torch.cat(parts))

    n = sample["x"]["src_tokens"].size(0)
    x = [vector(sample["x"]["src_tokens"][i], sample["x_span"][i].tolist()) for i in range(n)]
    y = [vector(sample["y"]["src_tokens"][i], sample["y_span"][i].tolist()) for i in range(n)]
    pairs = sample["pair_id"].tolist()
    items = [("x", i) for i in range(n)] + [("y", i) for i in range(n)]
    vec = {("x", i): x[i] for i in range(n)} | {("y", i): y[i] for i in range(n)}

    def cos(a, b):
        return float(torch.dot(a, b) / (a.norm() * b.norm()))

    total, anchors = 0.0, 0
    for side, i in items if symmetric else items[:n]:
        positive = ("y" if side == "x" else "x", i)
        negatives = [c for c in items if c != (side, i) and c != positive
                     and (keep_same_pair or pairs[c[1]] != pairs[i])]
        if not negatives:
            continue
        s_pos = cos(vec[(side, i)], vec[positive]) / temperature
        neg_sum = sum(math.exp(cos(vec[(side, i)], vec[c]) / temperature) for c in negatives)
        total += (math.log(neg_sum) - s_pos) if kind == "cz_nce" else \
            -math.log(math.exp(s_pos) / (math.exp(s_pos) + neg_sum))
        anchors += 1
    mlm_means = []
    for key in ("x_mlm", "y_mlm"):
        logits = model(**sample[key]["net_input"])[0]
        target = sample[key]["target"]
        losses = [float(-torch.log_softmax(logits[b, t].double(), -1)[target[b, t]])
                  for b in range(target.size(0)) for t in range(target.size(1)) if target[b, t] != pad]
        mlm_means.append(sum(losses) / len(losses))
    return total + alpha * anchors * 0.5 * sum(mlm_means), anchors


@pytest.mark.parametrize("levels,kind,symmetric,keep_same_pair", [
    ("both", "cz_nce", True, False),
    ("sentence", "infonce", False, False),
    ("word", "cz_nce", True, True),
])
def test_criterion_matches_hand_computation(tmp_path, levels, kind, symmetric, keep_same_pair):
    data = synthetic_wps(tmp_path / "wps", pairs=[2, 1, 1, 2])  # 6 samples; pairs 0 and 3 give two each
    flags = ["--levels", levels, "--contrastive-loss", kind, "--mask-prob", 0.3]
    flags += [] if symmetric else ["--one-directional"]
    flags += ["--keep-same-pair-negatives"] if keep_same_pair else []
    task, model, criterion = build(data, *flags)
    dim = model.args.encoder_embed_dim
    assert model.task_heads[MLCTL_HEAD].input_dim == (2 * dim if levels == "both" else dim)
    task.load_dataset("train")
    dataset = task.datasets["train"]
    sample = dataset.collater([dataset[i] for i in range(len(dataset))])
    assert sample["pair_id"].tolist() == [0, 0, 1, 2, 3, 3]
    model.eval()
    with torch.no_grad():
        loss, sample_size, log = criterion(model, sample)
        expected, anchors = _hand_loss(model, sample, levels, kind, symmetric, keep_same_pair)
    assert int(sample_size) == anchors == (12 if symmetric else 6)
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(expected, rel=1e-4, abs=1e-4)
    assert float(log["loss"]) == pytest.approx(loss.item())  # logged unscaled, no ln 2
    assert 0 <= int(log["retrieval_correct"]) <= anchors and int(log["mlm_tokens"]) > 0


def test_cz_nce_crosses_zero_once_pairs_separate(tmp_path):
    """Gradient steps on CZ-NCE alone keep lowering it below zero (InfoNCE would stop at 0)."""
    task, model, criterion = build(synthetic_wps(tmp_path / "wps", pairs=[1] * 6), "--mlm-weight", 0,
                                   "--mask-prob", 0, "--levels", "sentence")
    task.load_dataset("train")
    dataset = task.datasets["train"]
    sample = dataset.collater([dataset[i] for i in range(len(dataset))])
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(10):
        loss, sample_size, log = criterion(model, sample)
        optimizer.zero_grad()
        (loss / sample_size).backward()
        optimizer.step()
        losses.append(loss.item() / int(sample_size))
    assert losses[0] > 0 > losses[-1], losses
    assert int(log["retrieval_correct"]) == int(sample_size)


class _BackwardOnly:
    """What FairseqTask.train_step needs of an optimizer."""

    def backward(self, loss):
        loss.backward()


def test_dummy_and_empty_batches_still_gather(tmp_path, monkeypatch):
    task, model, criterion = build(synthetic_wps(tmp_path / "wps", pairs=[1, 1, 1]))
    task.load_dataset("train")
    dataset = task.datasets["train"]
    sample = dataset.collater([dataset[i] for i in range(3)])
    real_gather, calls = mlctl_criterion_module.gather_across_ranks, []

    def counting_gather(local, group=None):
        calls.append(tuple(local.shape))
        return real_gather(local, group)

    monkeypatch.setattr(mlctl_criterion_module, "gather_across_ranks", counting_gather)

    # fairseq's dummy batch: a real batch whose loss is multiplied by 0 (ignore_grad); it takes
    # part in the gathers of x, y (MLP of [sentence; word]) and pair ids but lends no rows
    loss, _, full_log = task.train_step(sample, model, criterion, _BackwardOnly(), 0, ignore_grad=True)
    assert loss.item() == 0.0 and calls == [(0, 256), (0, 256), (0, 1)]
    assert all(p.grad is None or not p.grad.any() for p in model.parameters())

    # a rank whose batch is empty after filtering: still gathers, contributes nothing, same keys
    empty = {key: value[:0] if torch.is_tensor(value) else value for key, value in sample.items()}
    for key in ("x", "y"):
        empty[key] = {"src_tokens": sample[key]["src_tokens"][:0], "src_lengths": sample[key]["src_lengths"][:0]}
    for key in ("x_mlm", "y_mlm"):
        empty[key] = {"net_input": {"src_tokens": sample[key]["net_input"]["src_tokens"][:0]},
                      "target": sample[key]["target"][:0]}
    empty["x_span"], empty["y_span"], empty["nsentences"], empty["ntokens"] = \
        sample["x_span"][:0], sample["y_span"][:0], 0, 0
    calls.clear()
    loss, sample_size, empty_log = criterion(model, empty)  # alone in the world: nothing to contrast
    loss.backward()
    assert calls == [(0, 256), (0, 256), (0, 1)]
    assert loss.item() == 0.0 and int(sample_size) == 0
    assert set(empty_log) == set(full_log)

    def gather_with_other_rank(local, group=None):  # another rank contributes two samples
        calls.append(tuple(local.shape))
        remote = torch.arange(100, 102).unsqueeze(1) if local.dtype == torch.long else torch.randn(2, local.size(1))
        return torch.cat([local, remote]), 0

    monkeypatch.setattr(mlctl_criterion_module, "gather_across_ranks", gather_with_other_rank)
    calls.clear()
    loss, sample_size, other_log = criterion(model, empty)
    assert calls == [(0, 256), (0, 256), (0, 1)]
    assert loss.item() == 0.0 and int(sample_size) == 0 and set(other_log) == set(full_log)
    assert all(not torch.is_tensor(v) or v.numel() == 1 for v in full_log.values())


def test_task_sets_up_from_dict_only_and_masks_a_copy(tmp_path):
    dict_only = tmp_path / "dict_only"
    dict_only.mkdir()
    (dict_only / "dict.txt").write_text("".join(f"w{i} 1\n" for i in range(VOCAB)), encoding="utf-8")
    task, model, _ = build(dict_only, "--levels", "sentence")
    assert model.task_heads[MLCTL_HEAD].input_dim == model.args.encoder_embed_dim
    with pytest.raises(FileNotFoundError, match="train.wps.npy"):
        task.load_dataset("train")

    data = synthetic_wps(tmp_path / "wps", pairs=[1, 1, 1, 1])
    for reproduce_bug in (False, True):
        task, _, _ = build(data, "--mask-prob", 0.5, *(["--mlctl-cl-on-masked-input"] if reproduce_bug else []))
        task.load_dataset("train")
        dataset = task.datasets["train"]
        clean = [dataset.x_side[i].clone() for i in range(4)]
        sample = dataset.collater([dataset[i] for i in range(4)])
        mask = task.dictionary.index("<mask>")
        assert sample["x_mlm"]["net_input"]["src_tokens"].eq(mask).any()
        assert all(torch.equal(dataset.x_side[i], clean[i]) for i in range(4))  # the stored sentence is intact
        contrastive_input_masked = sample["x"]["src_tokens"].eq(mask).any().item()
        assert contrastive_input_masked == reproduce_bug


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _train_args(data, save_dir, batch_size, updates):
    return [data, "--user-dir", "xsl_fairseq", "--task", "xsl_mlctl", "--criterion", "xsl_mlctl",
            "--arch", "xsl_roberta_tiny", "--dropout", 0, "--attention-dropout", 0, "--mask-prob", 0.3,
            "--optimizer", "adam", "--lr", "1e-3", "--batch-size", batch_size, "--max-update", updates,
            "--required-batch-size-multiple", 1, "--cpu", "--num-workers", 0, "--seed", 7,
            "--log-format", "json", "--log-interval", 1, "--save-dir", save_dir, "--no-save",
            "--disable-validation"]


def _epoch_records(stdout):
    """The end-of-epoch "train" JSON records (one update per epoch here)."""
    return [json.loads(m) for m in re.findall(r"\| train \| (\{.*\})", stdout)]


def _inner_records(stdout):
    """The "train_inner" JSON records printed every --log-interval updates."""
    return [json.loads(m) for m in re.findall(r"\| train_inner \| (\{.*\})", stdout)]


def test_two_gloo_ranks_train_like_one_rank_on_the_joined_batch(tmp_path):
    """9 samples: one rank takes all 9 per update, two ranks take 5 + 4 (uneven shards). With
    exact cross-rank negatives, the logged losses of every update agree."""
    data = synthetic_wps(tmp_path / "wps", pairs=[2, 1, 1, 1, 2, 1, 1])
    single = run_tool("fairseq-train", *_train_args(data, tmp_path / "one", 9, 3))
    port = _free_port()
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    ranks = [subprocess.Popen(
        [str(BIN_DIR / "fairseq-train"), *map(str, _train_args(data, tmp_path / "two", 5, 3)),
         "--distributed-world-size", "2", "--distributed-rank", str(rank), "--distributed-backend", "gloo",
         "--distributed-init-method", f"tcp://127.0.0.1:{port}", "--distributed-no-spawn",
         "--ddp-backend", "legacy_ddp"],
        cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for rank in (0, 1)]
    outputs = [proc.communicate(timeout=240)[0] for proc in ranks]
    assert [proc.returncode for proc in ranks] == [0, 0], outputs[0][-3000:] + outputs[1][-3000:]
    one, two = _epoch_records(single.stdout), _epoch_records(outputs[0])
    assert len(one) == len(two) == 3
    keys = ("train_loss", "train_contrastive_loss", "train_mlm_loss", "train_retrieval_acc")
    for a, b in zip(one, two):
        assert a["train_bsz"] == b["train_bsz"] == "9"  # both ranks' samples in every update
        assert [float(a[k]) for k in keys] == pytest.approx([float(b[k]) for k in keys], abs=2e-3), (a, b)


@pytest.fixture(scope="module")
def mlctl_trained(shared_data, tiny_corpus, tiny_data_bin, tmp_path_factory):
    """Word-positioned en-de samples from the NTREX slices and a short real fairseq-train run."""
    from preprocess.mlctl_wps import mine_wps

    root = tmp_path_factory.mktemp("mlctl")
    mine_wps([("de", str(tiny_corpus["en"]), str(tiny_corpus["de"]))],
             {"de": str(shared_data / "muse_dicts" / "en-de.dict")}, str(tiny_data_bin / "spm.model"),
             str(tiny_data_bin / "dict.txt"), str(root / "wps"), max_tokens_per_side=40)
    proc = run_tool("fairseq-train", root / "wps", "--user-dir", "xsl_fairseq", "--task", "xsl_mlctl",
                    "--criterion", "xsl_mlctl", "--arch", "xsl_roberta_tiny", "--max-positions", 64,
                    "--optimizer", "adam", "--lr", "1e-3", "--batch-size", 16, "--max-update", 40,
                    "--cpu", "--num-workers", 0, "--seed", 3, "--log-format", "json", "--log-interval", 10,
                    "--save-dir", root / "ckpt", "--no-epoch-checkpoints", "--disable-validation",
                    "--tensorboard-logdir", root / "tb")
    return root, _inner_records(proc.stdout)


def test_real_fairseq_train_loss_falls(mlctl_trained):
    root, logs = mlctl_trained
    assert len(logs) == 4
    first, last = logs[0], logs[-1]
    assert float(last["contrastive_loss"]) < float(first["contrastive_loss"]) - 0.3, (first, last)
    assert float(last["retrieval_acc"]) > float(first["retrieval_acc"])
    assert {"loss", "contrastive_loss", "mlm_loss", "mlm_acc", "retrieval_acc", "positive_cos"} <= set(last)
    assert list((root / "tb" / "train_inner").glob("events.out.tfevents.*"))


def test_retrieval_scores_the_mlctl_vector_and_head(mlctl_trained, shared_data, tmp_path):
    from xsl_fairseq.evaluation.cli import main as xsl_eval

    checkpoint = mlctl_trained[0] / "ckpt" / "checkpoint_last.pt"
    accuracies = {}
    for representation in ("layer", "mlctl", "mlctl-head"):
        out = tmp_path / representation
        assert xsl_eval(["retrieval", "--checkpoint", str(checkpoint), "--eval-dir", str(shared_data / "flores101"),
                         "--split", "devtest", "--languages", "deu", "--max-eval-examples", "40",
                         "--representation", representation, "--out", str(out)]) == 0
        results = json.loads((out / "results.json").read_text())
        assert results["config"]["representation"] == representation
        accuracies[representation] = results["languages"]["deu"]["accuracy"]["mean"]
    assert all(0 <= a <= 100 for a in accuracies.values())
    assert len(set(accuracies.values())) > 1  # three different vectors, not one path under three names


def test_sentence_representation_feeds_both_level_heads_the_sentence_twice():
    from xsl_fairseq.modules.mlctl import MlctlProjectionHead

    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.task_heads = torch.nn.ModuleDict({MLCTL_HEAD: MlctlProjectionHead(4)})

    states = [torch.randn(2, 3, 2) for _ in range(3)]
    tokens = torch.tensor([[0, 5, 2], [0, 2, 1]])
    model = Model()
    sentence = avg_first_last(states, tokens.ne(1))
    through = sentence_representation(model, states, tokens, 1, through_head=True)
    assert torch.allclose(through, model.task_heads[MLCTL_HEAD](torch.cat([sentence, sentence], -1)))
    assert torch.equal(sentence_representation(model, states, tokens, 1, through_head=False), sentence)
    with pytest.raises(ValueError, match="no trained ML-CTL head"):
        sentence_representation(torch.nn.Module(), states, tokens, 1, through_head=True)
