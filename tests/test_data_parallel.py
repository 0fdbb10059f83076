"""Data-parallel equivalence of every registered criterion, through fairseq's own Trainer.

One update on 2 gloo ranks (started by hand, ``legacy_ddp``: the CPU recipe of
``shared/notes/environment.md``) must give the loss, the sample size and every gradient (after
fairseq's all-reduce and its division by the total sample size) of one rank training on the
union of both ranks' examples, to 1e-5 in fp32 with dropout 0. Three splits of the same 4
examples: even (2 + 2), uneven (3 + 1), and rank 1 out of data (fairseq's dummy batch, whose
loss is zeroed, and which must not lend its rows to the other rank's negatives either).
Where the negatives are global (CACR of ``xsl_clism``, ``xsl_mlctl``) this is the proof that
gathering works with gradients; where a criterion normalises a term by a count (CLISM's
[QUE]s, MLM tokens), the count must be global too; where it draws random numbers (SALT's
augmentation), an example must be augmented alike whichever rank and batch it is in.

Each process (``tests/dp_worker.py``) runs every case after one start-up: two ranks and the
single-rank reference run side by side.
"""
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import REPO_ROOT, write_toy_sentence_pairs
from test_mlctl import synthetic_wps
from xsl_fairseq.data.features import IGNORE_LABEL, write_sequences

WORDS = 40  # synthetic dictionary w0..w39 = ids 4..43 (after <s> <pad> </s> <unk>)
FIRST_WORD, BOS, EOS = 4, 0, 2
TOLERANCE = 1e-5
EXAMPLES = 4
SPLITS = {"even": [[0, 1], [2, 3]], "uneven": [[0, 1, 2], [3]], "dummy": [[0, 1, 2, 3], []]}
CASES = ("xsl_masked_lm", "xsl_meta_mlm", "xsl_clism", "xsl_mlctl", "xsl_span_qa", "xsl_token_labeling",
         "sentence_prediction", "xsl_salt", "xsl_salt_random_substitutes", "xsl_salt_code_switch", "xsl_salt_mixup",
         "xsl_salt_token_labeling", "xsl_trelm_cdlm")  # the keys of criterion_cases


def write_dictionary(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "dict.txt").write_text("".join(f"w{i} 1\n" for i in range(WORDS)), encoding="utf-8")


def random_words(rng, low=6, high=12):
    return rng.integers(FIRST_WORD, FIRST_WORD + WORDS, int(rng.integers(low, high))).tolist()


def write_mono(directory: Path, sentences=12, seed=0) -> Path:
    """``xsl-prep binarize-mono`` layout: one sentence per line, each ending in ``</s>``."""
    write_dictionary(directory)
    rng = np.random.default_rng(seed)
    write_sequences(str(directory / "train"), [random_words(rng) + [EOS] for _ in range(sentences)])
    return directory


def write_per_language(root: Path) -> Path:
    """``xsl-prep binarize-mono --per-language`` layout (de, en) for xsl_meta_mlm."""
    write_dictionary(root)
    for seed, lang in enumerate(("de", "en")):
        write_mono(root / lang, seed=seed)
    return root


def write_clism(directory: Path, pairs=8, seed=0) -> Path:
    """``xsl-prep clism-binarize`` layout: source / target ids and, per entity, the source span
    and its aligned target span (first, last; inclusive), one or two entities per pair."""
    write_dictionary(directory)
    rng = np.random.default_rng(seed)
    sources, targets, spans = [], [], []
    for pair in range(pairs):
        source, target = random_words(rng, 8, 13), random_words(rng, 8, 13)
        quads = [[1, 2, 0, 1]] if pair % 2 else [[1, 1, 2, 3], [5, 6, 6, 6]]
        sources.append(source)
        targets.append(target)
        spans.append([v for quad in quads for v in quad])
    for name, rows in (("src", sources), ("tgt", targets), ("spans", spans)):
        write_sequences(str(directory / f"train.{name}"), rows)
    return directory


def write_span_qa(directory: Path, windows=8, seed=0) -> Path:
    """``xsl-eval qa`` layout: ``<s> question </s> passage </s>`` and the answer's token span."""
    write_dictionary(directory)
    rng = np.random.default_rng(seed)
    tokens, spans = [], []
    for _ in range(windows):
        question, passage = random_words(rng, 3, 6), random_words(rng, 8, 14)
        tokens.append([BOS, *question, EOS, *passage, EOS])
        start = len(question) + 2 + int(rng.integers(0, len(passage) - 2))
        spans.append([start, start + int(rng.integers(0, 2))])
    write_sequences(str(directory / "train.tokens"), tokens)
    write_sequences(str(directory / "train.spans"), spans)
    return directory


def write_token_labels(directory: Path, sentences=8, seed=0) -> Path:
    """``xsl-eval ner`` layout: a label per position, ``IGNORE_LABEL`` on ``<s>``, ``</s>`` and
    every third position (non-first sub-tokens)."""
    write_dictionary(directory)
    (directory / "labels.txt").write_text("O\nB-PER\nI-PER\n", encoding="utf-8")
    rng = np.random.default_rng(seed)
    tokens, labels = [], []
    for _ in range(sentences):
        words = random_words(rng)
        tokens.append([BOS, *words, EOS])
        labels.append([IGNORE_LABEL, *[IGNORE_LABEL if k % 3 == 2 else int(rng.integers(0, 3))
                                       for k in range(len(words))], IGNORE_LABEL])
    write_sequences(str(directory / "train.tokens"), tokens)
    write_sequences(str(directory / "train.labels"), labels)
    return directory


def write_trelm(directory: Path, pairs=8, seed=0) -> Path:
    """``xsl-prep trelm-align`` layout: ids of both sides and, per token, the 0-based aligned
    token of the other side (``-1``: unaligned)."""
    write_dictionary(directory)
    rng = np.random.default_rng(seed)
    parts = {"src": [], "tgt": [], "align": [], "align_rev": []}
    for _ in range(pairs):
        source, target = random_words(rng), random_words(rng)
        parts["src"].append(source)
        parts["tgt"].append(target)
        parts["align"].append([-1 if j % 4 == 3 else min(j, len(source) - 1) for j in range(len(target))])
        parts["align_rev"].append([-1 if i % 4 == 3 else min(i, len(target) - 1) for i in range(len(source))])
    for name, rows in parts.items():
        write_sequences(str(directory / f"train.{name}"), rows)
    return directory


def common_args(data, task, criterion, arch="xsl_roberta_tiny"):
    return [str(data), "--user-dir", str(REPO_ROOT / "xsl_fairseq"), "--task", task, "--criterion", criterion,
            "--arch", arch, "--dropout", "0", "--attention-dropout", "0", "--activation-dropout", "0",
            "--optimizer", "sgd", "--lr", "0.1", "--clip-norm", "0", "--batch-size", str(EXAMPLES),
            "--required-batch-size-multiple", "1", "--max-positions", "64", "--cpu", "--num-workers", "0",
            "--seed", "3", "--disable-validation", "--no-save", "--log-format", "none"]


def criterion_cases(root: Path) -> dict:
    """fairseq-train options of every registered criterion. SALT four times: sampled
    code-switching and Beta mixup (its random choices are drawn per example, so they must
    agree too), random substitutes, and each augmentation on every real token; and SALT's
    token-labelling criterion with both augmentations."""
    pairs = write_toy_sentence_pairs(root / "pairs", examples=16)
    sentence_pair = ["--num-classes", "2", "--init-token", "0", "--separator-token", "2", "--pooler-dropout", "0"]
    salt = ["--criterion", "xsl_salt", "--salt-topk", "3", *sentence_pair]
    return {
        "xsl_masked_lm": common_args(write_mono(root / "mono"), "xsl_masked_lm", "xsl_masked_lm")
        + ["--sample-break-mode", "eos", "--tokens-per-sample", "32", "--mask-prob", "0.3"],
        "xsl_meta_mlm": common_args(write_per_language(root / "multi"), "xsl_meta_mlm", "xsl_meta_mlm")
        + ["--sample-break-mode", "eos", "--tokens-per-sample", "32", "--mask-prob", "0.3"],
        "xsl_clism": common_args(write_clism(root / "clism"), "xsl_clism", "xsl_clism")
        + ["--max-source-tokens", "64", "--max-target-tokens", "64", "--mask-prob", "0.3"],
        "xsl_mlctl": common_args(synthetic_wps(root / "wps", pairs=[2, 1, 1, 2, 1, 1]), "xsl_mlctl", "xsl_mlctl")
        + ["--mask-prob", "0.3"],
        "xsl_span_qa": common_args(write_span_qa(root / "qa"), "xsl_span_qa", "xsl_span_qa"),
        "xsl_token_labeling": common_args(write_token_labels(root / "ner"), "xsl_token_labeling",
                                          "xsl_token_labeling") + ["--head-dropout", "0"],
        "sentence_prediction": common_args(pairs, "xsl_sentence_prediction", "sentence_prediction") + sentence_pair,
        "xsl_salt": common_args(pairs, "xsl_sentence_prediction", "xsl_salt")
        + salt + ["--salt-cs-prob", "0.3", "--salt-mix-prob", "0.3", "--salt-mix-alpha", "0.4"],
        "xsl_salt_random_substitutes": common_args(pairs, "xsl_sentence_prediction", "xsl_salt")
        + salt + ["--salt-random-substitutes"],
        "xsl_salt_code_switch": common_args(pairs, "xsl_sentence_prediction", "xsl_salt")
        + salt + ["--salt-cs-prob", "1", "--salt-mix-prob", "0", "--salt-cs-sampling", "argmax"],
        "xsl_salt_mixup": common_args(pairs, "xsl_sentence_prediction", "xsl_salt")
        + salt + ["--salt-cs-prob", "0", "--salt-mix-prob", "1", "--salt-mix-lambda", "0.3"],
        "xsl_salt_token_labeling": common_args(write_token_labels(root / "ner"), "xsl_token_labeling",
                                               "xsl_salt_token_labeling")
        + ["--head-dropout", "0", "--salt-topk", "3", "--salt-cs-prob", "0.3", "--salt-mix-prob", "0.3",
           "--salt-mix-alpha", "0.4"],
        "xsl_trelm_cdlm": common_args(write_trelm(root / "trelm"), "xsl_trelm_cdlm", "xsl_trelm_cdlm",
                                      arch="xsl_trelm_tiny") + ["--trelm-stage", "upper", "--mask-prob", "0.3"],
    }


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _launch(spec: Path, rank: int, world_size: int, port: int, out: Path) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1",
               PYTHONPATH=os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]))
    return subprocess.Popen([sys.executable, str(REPO_ROOT / "tests" / "dp_worker.py"), str(spec), str(rank),
                             str(world_size), str(port), str(out)],
                            cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Every criterion x split on 2 ranks, and every criterion on 1 rank (the union of the
    examples is the same for every split)."""
    root = tmp_path_factory.mktemp("dp")
    options = criterion_cases(root)
    assert tuple(options) == CASES
    two_ranks = [{"name": f"{name}/{split}", "args": args, "ids": ids}
                 for name, args in options.items() for split, ids in SPLITS.items()]
    one_rank = [{"name": name, "args": args, "ids": [list(range(EXAMPLES))]} for name, args in options.items()]
    (root / "two.json").write_text(json.dumps(two_ranks))
    (root / "one.json").write_text(json.dumps(one_rank))
    port = _free_port()
    procs = [_launch(root / "two.json", rank, 2, port, root / f"rank{rank}.pt") for rank in (0, 1)]
    procs.append(_launch(root / "one.json", 0, 1, 0, root / "single.pt"))
    try:
        outputs = [proc.communicate(timeout=600)[0] for proc in procs]
    except subprocess.TimeoutExpired:  # a collective that one rank never reaches: a deadlock
        for proc in procs:
            proc.kill()
        raise
    for proc, output in zip(procs, outputs):
        assert proc.returncode == 0, output[-6000:]
    return {"ranks": [torch.load(root / f"rank{r}.pt") for r in (0, 1)], "single": torch.load(root / "single.pt"),
            "criteria": list(options)}


@pytest.mark.parametrize("split", list(SPLITS))
@pytest.mark.parametrize("criterion", CASES)
def test_two_ranks_equal_one_rank_on_the_union(runs, criterion, split):
    single = runs["single"][criterion]
    for rank, result in enumerate(runs["ranks"]):
        got = result[f"{criterion}/{split}"]
        assert got["sample_size"] == single["sample_size"] > 0, (rank, got["sample_size"], single["sample_size"])
        assert got["loss"] / got["sample_size"] == pytest.approx(single["loss"] / single["sample_size"],
                                                                 abs=TOLERANCE, rel=TOLERANCE), rank
        assert got["grads"].keys() == single["grads"].keys()
        for name, grad in single["grads"].items():
            torch.testing.assert_close(got["grads"][name], grad, atol=TOLERANCE, rtol=TOLERANCE,
                                       msg=lambda m: f"rank {rank}, {name}: {m}")
        assert any(grad.abs().sum() > 0 for grad in single["grads"].values())
        if criterion.startswith("xsl_salt"):  # the same tokens augmented, and some at all
            assert (got["salt_code_switched"], got["salt_mixed"]) == (single["salt_code_switched"],
                                                                      single["salt_mixed"])
            assert single["salt_code_switched"] + single["salt_mixed"] > 0


def test_every_registered_criterion_is_covered(runs):
    import xsl_fairseq  # noqa: F401
    from fairseq.criterions import CRITERION_REGISTRY

    ours = {name for name, cls in CRITERION_REGISTRY.items() if cls.__module__.startswith("xsl_fairseq")}
    covered = {name for name in runs["criteria"] if name in CRITERION_REGISTRY}
    assert ours | {"sentence_prediction"} == covered


def test_salt_draws_follow_the_example_not_its_batch():
    """The unit behind SALT's equivalence: example 7's random numbers are the same alone, in a
    batch with example 5 and with other padding, and differ from example 5's."""
    from xsl_fairseq.modules.salt import example_draws

    pad = 1
    seven, five = [0, 11, 12, 13, 2], [0, 21, 22, 23, 24, 25, 26, 2]
    alone = torch.tensor([seven])
    together = torch.tensor([five, seven + [pad] * 3])
    draws = [example_draws(t, pad, ids, seed=4, k=3, mix_lambda=0.5, mix_alpha=0.4)
             for t, ids in ((alone, torch.tensor([7])), (together, torch.tensor([5, 7])))]
    for field in ("position", "pick", "lambdas", "random"):
        lone, joint = getattr(draws[0], field), getattr(draws[1], field)
        assert torch.equal(lone[0], joint[1, :len(seven)]), field
        assert not torch.equal(joint[0, :len(seven)], joint[1, :len(seven)]), field
    assert ((draws[1].lambdas > 0) & (draws[1].lambdas < 1)).all()  # Beta(0.4, 0.4) per token
