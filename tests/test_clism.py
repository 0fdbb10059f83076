"""xsl_clism task and criterion: batch construction, the loss against hand computation,
CACR across 2 gloo ranks, a real fairseq-train run, and xsl-eval qa in [QUE] mode."""
import json
import math
import re

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn as nn
import torch.nn.functional as F

from conftest import run_tool
from preprocess.clism_binarize import binarize_clism
from preprocess.clism_spans import mine_spans
from test_train import train_logs
from xsl_fairseq.criterions.xsl_clism import XslClismCriterion, XslClismCriterionConfig, cacr_loss
from xsl_fairseq.data.dictionary import QUE_SYMBOL
from xsl_fairseq.modules.heads import QUERY_POINTER_HEAD, QueryPointerHead
from xsl_fairseq.tasks.xsl_clism import XslClismConfig, XslClismTask

RECORDS = [
    ("Angela Merkel met Emmanuel Macron in Paris on Monday.", "Angela Merkel traf Emmanuel Macron am Montag in Paris.",
     [("Angela Merkel", "Angela Merkel"), ("Emmanuel Macron", "Emmanuel Macron"), ("Paris", "Paris"),
      ("Monday", "Montag")]),
    ("The United Nations met in Geneva.", "Die Vereinten Nationen trafen sich in Genf.",
     [("The United Nations", "Vereinten Nationen"), ("Geneva", "Genf")]),
    ("Google opened an office in London last year.", "Google eröffnete letztes Jahr ein Büro in London.",
     [("Google", "Google"), ("London", "London"), ("last year", "letztes Jahr")]),
]


def record(src, tgt, pairs):
    spans = [{"src": [src.index(a), src.index(a) + len(a)], "tgt": [tgt.index(b), tgt.index(b) + len(b)]}
             for a, b in pairs]
    return json.dumps({"src": src, "tgt": tgt, "spans": spans}, ensure_ascii=False)


@pytest.fixture(scope="module")
def hand_made_bin(tiny_data_bin, tmp_path_factory):
    root = tmp_path_factory.mktemp("clism-hand")
    (root / "m.jsonl").write_text("".join(record(*r) + "\n" for r in RECORDS), encoding="utf-8")
    binarize_clism([str(root / "m.jsonl")], str(tiny_data_bin / "spm.model"), str(tiny_data_bin / "dict.txt"),
                   str(root / "bin"))
    return root / "bin"


def clism_task(data, **overrides):
    task = XslClismTask.setup_task(XslClismConfig(data=str(data), seed=1, **overrides))
    task.load_dataset("train")
    return task


def test_batch_places_que_answers_and_never_masks_them(hand_made_bin, tiny_data_bin):
    from xsl_fairseq.evaluation.pretrained import TextEncoder

    task = clism_task(hand_made_bin)
    dataset, dictionary = task.dataset("train"), task.dictionary
    que = task.que_idx
    assert dictionary[que] == QUE_SYMBOL and que == len(dictionary) - 1
    encoder = TextEncoder(str(tiny_data_bin / "spm.model"), dictionary)
    for index in range(len(dataset)):
        tokens, que_positions, starts, ends, source = dataset.build_input(index)
        src, tgt, pairs = RECORDS[int(dataset.pair_ids[index])]
        # X = <s> ŝ </s> t </s>, one [QUE] per entity, in source order
        assert tokens[0] == dictionary.bos() and tokens.count(dictionary.eos()) == 2 and tokens[-1] == dictionary.eos()
        assert [i for i, t in enumerate(tokens) if t == que] == que_positions and len(que_positions) == len(pairs)
        assert tokens[tokens.index(dictionary.eos()) + 1:-1] == encoder.encode(tgt)
        assert source == [dictionary.bos(), *encoder.encode(src), dictionary.eos()]
        for (entity, answer), start, end in zip(pairs, starts, ends):
            decoded = dictionary.string(tokens[start:end + 1]).replace(" ", "").replace("▁", " ").strip()
            assert decoded == answer
        # ŝ decodes to the source with every entity replaced by one [QUE], which took the
        # entity's word-start marker with it
        masked_text = src
        for entity, _ in pairs:
            masked_text = masked_text.replace(entity, QUE_SYMBOL)
        decoded = dictionary.string(tokens[1:tokens.index(dictionary.eos())]).replace(" ", "").replace("▁", " ")
        assert decoded.strip() == re.sub(r"\s*\[QUE\]", QUE_SYMBOL, masked_text).strip()

    # MLM: 15% of the eligible positions over many draws; never <s>, </s>, [QUE] or answers
    predicted = eligible = 0
    replaced = {"mask": 0, "random": 0, "kept": 0}
    for epoch in range(1, 41):
        dataset.set_epoch(epoch)
        for index in range(len(dataset)):
            plain, que_positions, starts, ends, _ = dataset.build_input(index)
            item = dataset[index]
            protected = {0, *que_positions, *[i for i, t in enumerate(plain) if t == dictionary.eos()]}
            for start, end in zip(starts, ends):
                protected.update(range(start, end + 1))
            chosen = item["mlm_target"].ne(dictionary.pad()).nonzero().flatten().tolist()
            assert not protected & set(chosen)
            assert all(item["tokens"][i] == plain[i] for i in protected)
            assert item["mlm_target"][chosen].tolist() == [plain[i] for i in chosen]
            for i in chosen:
                token = int(item["tokens"][i])
                kind = "mask" if token == dictionary.index("<mask>") else "kept" if token == plain[i] else "random"
                replaced[kind] += 1
                assert token != que
            predicted += len(chosen)
            eligible += len(plain) - len(protected)
    assert 0.12 < predicted / eligible < 0.18, predicted / eligible
    assert replaced["mask"] > 6 * replaced["random"] and replaced["random"] > 0 and replaced["kept"] > 0

    batch = dataset.collater([dataset[i] for i in range(len(dataset))])
    que_info = batch["que"]
    assert que_info["rows"].tolist() == sorted(que_info["rows"].tolist()) and len(que_info["rows"]) == 9
    x = batch["net_input"]["src_tokens"]
    assert (x[que_info["rows"], que_info["positions"]] == que).all()
    paired = clism_task(hand_made_bin, source_pass="paired").dataset("train").build_input(0)
    assert paired[4][-1] == dictionary.eos() and paired[4].count(dictionary.eos()) == 2


def test_length_caps_skip_pairs_and_que_is_required(hand_made_bin):
    # the first record's source is the longest; a cap just below it skips exactly that pair
    lengths = [len(clism_task(hand_made_bin).dataset("train").build_input(i)[4]) for i in range(3)]
    task = clism_task(hand_made_bin, max_source_tokens=max(lengths) - 1)
    assert len(task.dataset("train")) == 2
    with pytest.raises(ValueError, match=r"dict\.txt: --extra-special-symbols '' lacks \[QUE\]"):
        XslClismTask.setup_task(XslClismConfig(data=str(hand_made_bin), seed=1, extra_special_symbols=""))


class FakeEncoder(nn.Module):
    def __init__(self, embed):
        super().__init__()
        self.embed = embed

    def output_layer(self, features, masked_tokens=None, **unused):
        if masked_tokens is not None:
            features = features[masked_tokens]
        return features @ self.embed.weight.t()


class FakeModel(nn.Module):
    """features = tanh(embedding): enough structure for the criterion, easy to recompute."""

    def __init__(self, vocab, dim):
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.encoder = FakeEncoder(self.embed)
        self.task_heads = nn.ModuleDict({QUERY_POINTER_HEAD: QueryPointerHead(dim)})

    def forward(self, src_tokens, src_lengths=None, features_only=False, **unused):
        return torch.tanh(self.embed(src_tokens)), {}


def hand_computed(model, batch, dictionary, temperature, symmetric, domain):
    """Eq. 9 with means, written out with loops over the batch."""
    pad, eos = dictionary.pad(), dictionary.eos()
    x = batch["net_input"]["src_tokens"]
    feats = model(x)[0].detach().double()
    head = model.task_heads[QUERY_POINTER_HEAD]
    w_start, w_end = head.start.weight.double(), head.end.weight.double()
    que = batch["que"]
    clism = []
    for n in range(len(que["rows"])):
        b, p = int(que["rows"][n]), int(que["positions"][n])
        row = x[b].tolist()
        first_eos = row.index(eos)
        if domain == "all":
            allowed = [k for k, t in enumerate(row) if t != pad]
        else:
            allowed = [k for k in range(first_eos + 1, len(row)) if row[k] not in (pad, eos)]
        for weight, answer in ((w_start, que["answer_starts"][n]), (w_end, que["answer_ends"][n])):
            scores = {k: float(feats[b, k] @ (weight @ feats[b, p])) for k in allowed}
            log_z = math.log(sum(math.exp(v) for v in scores.values()))
            clism.append(log_z - scores[int(answer)])
    clism_mean = sum(clism) / len(que["rows"])  # start + end per [QUE]

    def segment_mean(features, row, segment):
        separators = [k for k, t in enumerate(row) if t == eos]
        lo, hi = (1, separators[0]) if segment == 0 else (separators[0] + 1, separators[1])
        return features[lo:hi].mean(dim=0)

    src = batch["source_net_input"]["src_tokens"]
    src_feats = model(src)[0].detach().double()
    views = {
        "s": [segment_mean(src_feats[b], src[b].tolist(), 0) for b in range(len(x))],
        "ŝ": [segment_mean(feats[b], x[b].tolist(), 0) for b in range(len(x))],
        "t": [segment_mean(feats[b], x[b].tolist(), 1) for b in range(len(x))],
    }

    def contrast(a, b):
        total = 0.0
        for i in range(len(x)):
            sims = [float(F.cosine_similarity(views[a][i], views[b][j], dim=0)) / temperature for j in range(len(x))]
            total += math.log(sum(math.exp(v) for v in sims)) - sims[i]
        return total / len(x)

    terms = [("t", "ŝ"), ("s", "ŝ"), ("t", "s")]
    if symmetric:
        cacr = sum((contrast(a, b) + contrast(b, a)) / 2 for a, b in terms)
    else:
        cacr = sum(contrast(a, b) for a, b in terms)

    target = batch["target"]
    mlm = []
    for b, t in target.ne(pad).nonzero().tolist():
        logits = feats[b, t] @ model.embed.weight.double().t()
        mlm.append(float(torch.logsumexp(logits, 0) - logits[target[b, t]]))
    return clism_mean, cacr, sum(mlm) / len(mlm), len(mlm)


@pytest.mark.parametrize("domain,symmetric,temperature,batching",
                         [("all", False, 0.05, "separate"), ("target", True, 20.0, "joint")])
def test_criterion_matches_hand_computation(hand_made_bin, domain, symmetric, temperature, batching):
    task = clism_task(hand_made_bin)
    dataset = task.dataset("train")
    dataset.set_epoch(3)
    batch = dataset.collater([dataset[i] for i in range(len(dataset))])
    torch.manual_seed(0)
    model = FakeModel(len(task.dictionary), 16)
    criterion = XslClismCriterion(XslClismCriterionConfig(pointer_domain=domain, cacr_symmetric=symmetric,
                                                          cacr_temperature=temperature,
                                                          source_pass_batching=batching), task)
    loss, sample_size, log = criterion(model, batch)
    clism, cacr, mlm, masked = hand_computed(model, batch, task.dictionary, temperature, symmetric, domain)
    assert sample_size == 3 and log["num_que"] == 9 and int(log["mlm_tokens"]) == masked > 0
    assert float(log["clism_loss"]) / 9 == pytest.approx(clism, rel=1e-4)
    assert float(log["cacr_loss"]) / 3 == pytest.approx(cacr, rel=1e-4)
    assert float(log["mlm_loss"]) / masked == pytest.approx(mlm, rel=1e-4)
    assert float(loss) / sample_size == pytest.approx(clism + cacr + mlm, rel=1e-4)
    loss.backward()
    assert model.task_heads[QUERY_POINTER_HEAD].start.weight.grad.abs().sum() > 0

    weighted = XslClismCriterion(XslClismCriterionConfig(clism_weight=0.5, cacr_weight=0.0, mlm_weight=2.0,
                                                         pointer_domain=domain), task)
    loss, _, log = weighted(model, batch)
    assert float(loss) / 3 == pytest.approx(0.5 * clism + 2.0 * mlm, rel=1e-4)
    assert float(log["cacr_loss"]) == 0.0 and log["cacr_anchors"] == 0


def test_joint_source_pass_equals_separate_passes_on_a_real_encoder(hand_made_bin):
    # the source rows are padded to X's width in the joint call: positions and attention
    # masks must make that invisible, loss and gradients alike
    from argparse import Namespace

    task = clism_task(hand_made_bin)
    dataset = task.dataset("train")
    batch = dataset.collater([dataset[i] for i in range(len(dataset))])
    assert batch["source_net_input"]["src_tokens"].size(1) < batch["net_input"]["src_tokens"].size(1)
    torch.manual_seed(0)
    model = task.build_model(Namespace(arch="xsl_roberta_tiny", dropout=0.0, attention_dropout=0.0))
    results = {}
    for batching in ("separate", "joint"):
        model.zero_grad()
        criterion = XslClismCriterion(XslClismCriterionConfig(source_pass_batching=batching), task)
        loss, _, log = criterion(model, batch)
        loss.backward()
        results[batching] = (log, [p.grad.clone() for p in model.parameters() if p.grad is not None])
    (separate, separate_grads), (joint, joint_grads) = results["separate"], results["joint"]
    for key in ("loss", "clism_loss", "cacr_loss", "mlm_loss"):
        assert float(joint[key]) == pytest.approx(float(separate[key]), rel=1e-5), key
    assert len(joint_grads) == len(separate_grads)
    assert max(float((a - b).abs().max()) for a, b in zip(joint_grads, separate_grads)) < 1e-4


def test_pointer_head_scores_each_query_over_its_own_row():
    torch.manual_seed(0)
    head = QueryPointerHead(8)
    features = torch.randn(3, 5, 8)
    rows = torch.tensor([2, 0, 2, 1, 2])  # unsorted, three queries on row 2
    queries = torch.randn(5, 8)
    start, end = head(features, queries, rows)
    for n in range(5):
        expected_start = features[rows[n]] @ (head.start.weight @ queries[n])
        expected_end = features[rows[n]] @ (head.end.weight @ queries[n])
        assert torch.allclose(start[n], expected_start, atol=1e-5) and torch.allclose(end[n], expected_end, atol=1e-5)
    one_per_row, _ = head(features, queries[:3])  # default: query i reads row i
    assert torch.allclose(one_per_row[1], features[1] @ (head.start.weight @ queries[1]), atol=1e-5)


def _cacr_rank_worker(rank, init_file, views, splits, dummy_rank, out):
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    lo, hi = splits[rank], splits[rank + 1]
    local = [v[lo:hi].clone().requires_grad_(True) for v in views]
    result = cacr_loss(*local, temperature=0.05, symmetric=True)
    result.loss.sum().backward()
    dummy = cacr_loss(*[v[lo:hi] for v in views], temperature=0.05, share_negatives=rank != dummy_rank)
    out[rank] = {"loss": result.loss.detach().clone(), "grads": [v.grad.clone() for v in local],
                 "correct": int(result.correct), "dummy_loss": dummy.loss.clone()}
    dist.destroy_process_group()


def test_cacr_two_gloo_ranks_equal_one_rank_on_the_joined_batch(tmp_path):
    torch.manual_seed(0)
    views = [torch.randn(7, 6) for _ in range(3)]  # r^s, r̂^s, r^t
    splits = [0, 3, 7]  # uneven, as token-based batching gives
    out = mp.Manager().dict()
    mp.spawn(_cacr_rank_worker, args=(str(tmp_path / "store"), views, splits, 1, out), nprocs=2, join=True)

    joined = [v.clone().requires_grad_(True) for v in views]
    single = cacr_loss(*joined, temperature=0.05, symmetric=True)
    single.loss.sum().backward()
    assert torch.allclose(torch.cat([out[0]["loss"], out[1]["loss"]]), single.loss.detach(), atol=1e-5)
    assert out[0]["correct"] + out[1]["correct"] == int(single.correct)
    for k in range(3):
        assert torch.allclose(torch.cat([out[0]["grads"][k], out[1]["grads"][k]]), joined[k].grad, atol=1e-5)
    # rank 1 runs a dummy batch: rank 0 then contrasts its rows with its own rows only
    alone = cacr_loss(*[v[:3] for v in views], temperature=0.05)
    assert torch.allclose(out[0]["dummy_loss"], alone.loss, atol=1e-5)


@pytest.fixture(scope="module")
def mined_bin(tiny_corpus, tiny_data_bin, tmp_path_factory):
    """en-de slice mined with spaCy + eflomal and binarized with the tiny vocabulary."""
    root = tmp_path_factory.mktemp("clism-mined")
    mine_spans(str(tiny_corpus["en"]), str(tiny_corpus["de"]), str(root / "en-de.jsonl"))
    binarize_clism([str(root / "en-de.jsonl")], str(tiny_data_bin / "spm.model"), str(tiny_data_bin / "dict.txt"),
                   str(root / "bin"), valid_lines=20)
    return root / "bin"


@pytest.fixture(scope="module")
def clism_checkpoint(mined_bin, tmp_path_factory):
    save_dir = tmp_path_factory.mktemp("clism-ckpt")
    tensorboard = save_dir / "tb"
    proc = run_tool(
        "fairseq-train", mined_bin, "--user-dir", "xsl_fairseq", "--task", "xsl_clism", "--criterion", "xsl_clism",
        "--arch", "xsl_roberta_tiny", "--max-source-tokens", 64, "--max-target-tokens", 64,
        "--optimizer", "adam", "--lr", "1e-3", "--lr-scheduler", "inverse_sqrt", "--warmup-updates", 5,
        "--batch-size", 8, "--max-update", 30, "--cpu", "--num-workers", 0, "--seed", 2,
        "--log-format", "json", "--log-interval", 10, "--save-dir", save_dir, "--no-epoch-checkpoints",
        "--disable-validation", "--tensorboard-logdir", tensorboard)
    return save_dir / "checkpoint_last.pt", proc.stdout, tensorboard


def test_fairseq_train_clism_loss_falls_and_logs_every_component(clism_checkpoint):
    checkpoint, stdout, tensorboard = clism_checkpoint
    logs = train_logs(stdout)
    assert len(logs) == 3
    first, last = float(logs[0]["clism_loss"]), float(logs[-1]["clism_loss"])
    assert last < first - 1.0, (first, last)
    for key in ("loss", "clism_loss", "cacr_loss", "mlm_loss", "start_acc", "end_acc", "cacr_acc", "mlm_acc"):
        assert key in logs[-1]

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tensorboard / "train_inner"))
    events.Reload()
    assert {"clism_loss", "cacr_loss", "mlm_loss", "start_acc", "end_acc", "cacr_acc"} <= set(events.Tags()["scalars"])
    state = torch.load(checkpoint, weights_only=False)
    assert state["model"][f"task_heads.{QUERY_POINTER_HEAD}.start.weight"].shape == (128, 128)
    assert state["cfg"]["task"]["extra_special_symbols"] == QUE_SYMBOL
    # the caps reach the task (no arch default silently replaces them) and size the positions
    assert state["cfg"]["task"]["max_source_tokens"] == state["cfg"]["task"]["max_target_tokens"] == 64
    assert state["model"]["encoder.sentence_encoder.embed_positions.weight"].shape[0] == 128 + 2


def test_xsl_eval_qa_que_mode_few_shot_keeps_pretrained_pointer(clism_checkpoint, shared_data, tmp_path):
    from xsl_fairseq.data.features import load_sequences
    from xsl_fairseq.evaluation.cli import main as xsl_eval

    checkpoint, _, _ = clism_checkpoint
    mlqa = shared_data / "mlqa" / "dev"
    out = tmp_path / "out"
    assert xsl_eval(["qa", "--checkpoint", str(checkpoint), "--eval-dir", str(mlqa), "--languages", "en,de",
                     "--max-seq-length", "128", "--max-query-length", "20", "--doc-stride", "100", "--train",
                     str(mlqa / "dev-context-en-question-en.json"), "--out", str(out), "--max-train-examples", "40",
                     "--max-eval-examples", "8", "--epochs", "1", "--batch-size", "16", "--que-mode",
                     "--few-shot", "8", "--seeds", "3"]) == 0
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert set(results["languages"]) == {"en", "de"}
    assert 0 <= results["languages"]["de"]["exact_match"]["mean"] <= results["languages"]["de"]["f1"]["mean"] <= 100
    assert list(results["config"]["few_shot_windows"]) == ["3"]

    data = out / "work" / "data"
    que = len((data / "dict.txt").read_text(encoding="utf-8").splitlines()) + 5  # 4 specials + <mask> + [QUE]
    window = load_sequences(str(data / "test_de.tokens"))[0].tolist()
    assert window.count(que) == 1 and window[window.index(que) + 1] == 2  # <s> question [QUE] </s> passage </s>
    few_shot = load_sequences(str(data / "train_k8_seed3.tokens"))
    assert len(few_shot) == results["config"]["few_shot_windows"]["3"] < len(load_sequences(str(data / "train.tokens")))

    # the pretrained W_s / W_e were fine-tuned, not replaced: one epoch at lr 3e-5 moves
    # them far less than the distance to a fresh N(0, 0.02) initialisation
    pretrained = torch.load(checkpoint, weights_only=False)["model"]
    finetuned = torch.load(out / "work" / "checkpoints_seed3" / "checkpoint_last.pt", weights_only=False)["model"]
    key = f"task_heads.{QUERY_POINTER_HEAD}.start.weight"
    assert (finetuned[key] - pretrained[key]).abs().max() < 0.1 * pretrained[key].abs().max()


def test_few_shot_samples_differ_per_seed(shared_data, tiny_data_bin, tmp_path):
    from argparse import Namespace

    from xsl_fairseq.data.dictionary import load_dictionary
    from xsl_fairseq.data.features import load_sequences
    from xsl_fairseq.evaluation.pretrained import TextEncoder
    from xsl_fairseq.evaluation.qa import QAEvaluation
    from xsl_fairseq.evaluation.readers import read_squad_json

    pretrained = Namespace(extra_special_symbols=QUE_SYMBOL, checkpoint="-",
                           dictionary=lambda: load_dictionary(str(tiny_data_bin / "dict.txt"), [QUE_SYMBOL]))
    encoder = TextEncoder(str(tiny_data_bin / "spm.model"), pretrained.dictionary())
    args = Namespace(que_mode=True, few_shot=4, max_query_length=20, max_seq_length=128, doc_stride=100)
    evaluation = QAEvaluation(args, pretrained, encoder, str(tmp_path))
    evaluation.few_shot_pool = read_squad_json(shared_data / "mlqa" / "dev" / "dev-context-en-question-en.json")[:50]
    drawn = []
    for seed in (1, 2, 1):
        assert evaluation.few_shot_split(seed) == ["--train-subset", f"train_k4_seed{seed}"]
        windows = [w.tolist() for w in load_sequences(str(tmp_path / "data" / f"train_k4_seed{seed}.tokens"))]
        assert len(windows) == evaluation.num_train
        assert all(w.count(encoder.dictionary.index(QUE_SYMBOL)) == 1 for w in windows)
        drawn.append(windows)
    assert drawn[0] == drawn[2] and drawn[0] != drawn[1]  # a seed fixes the sample; seeds differ
    assert evaluation.extra_report["few_shot_windows"].keys() == {"1", "2"}


def test_span_qa_que_mode_without_que_is_an_error(tmp_path, tiny_data_bin):
    from xsl_fairseq.tasks.xsl_span_qa import XslSpanQAConfig, XslSpanQATask

    (tmp_path / "dict.txt").write_text((tiny_data_bin / "dict.txt").read_text(encoding="utf-8"), encoding="utf-8")
    with pytest.raises(ValueError, match=r"dict\.txt: --que-mode needs \[QUE\] in the dictionary"):
        XslSpanQATask.setup_task(XslSpanQAConfig(data=str(tmp_path), que_mode=True, seed=1))
    task = XslSpanQATask.setup_task(XslSpanQAConfig(data=str(tmp_path), que_mode=True, seed=1,
                                                    extra_special_symbols=QUE_SYMBOL))
    assert task.que_idx == len(task.dictionary) - 1
