"""xsl-eval's XTREME conventions and the paired bootstrap of `xsl-eval compare`, on synthetic
cases whose answer is known, plus seqeval agreement on real UD / UNER slices."""
import json
import types

import numpy as np
import pytest
import torch

from xsl_fairseq.evaluation import retrieval as retrieval_module
from xsl_fairseq.evaluation.compare import _replicate_scores, paired_bootstrap
from xsl_fairseq.evaluation.metrics import f1_from_counts, pos_f1, seqeval_chunk_counts
from xsl_fairseq.evaluation.predictions import scoring_units, write_items
from xsl_fairseq.evaluation.readers import read_conllu, read_iob2
from xsl_fairseq.evaluation.retrieval import RetrievalEvaluation, xtreme_default_layer

# -- retrieval: XTREME's layer and direction ------------------------------------------------

pytestmark = pytest.mark.filterwarnings("ignore:.*seems not to be NE tag")

NUM_LAYERS, DIM, N = 12, 16, 40


class _Layers(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = torch.nn.ModuleList(torch.nn.Identity() for _ in range(NUM_LAYERS))


class FakeEncoder:
    """Hidden state k of token t is table[k][t] (specials are zero vectors): a 12-layer
    model whose every state is chosen by the test. Runs as many layers as it holds, like
    fairseq's TransformerEncoder."""

    def __init__(self, tables):
        self.tables = tables
        self.sentence_encoder = _Layers()

    def extract_features(self, src_tokens, return_all_hiddens=True):
        count = len(self.sentence_encoder.layers) + 1
        states = [table[src_tokens].transpose(0, 1) for table in self.tables[:count]]
        return states[-1], {"inner_states": states}


class FakeTextEncoder:
    """Sentence "s{k}" is the single token k + 4 (0..3 are <s> <pad> </s> <unk>)."""

    class dictionary:  # noqa: N801 - mimics fairseq's Dictionary interface
        bos, pad, eos = staticmethod(lambda: 0), staticmethod(lambda: 1), staticmethod(lambda: 2)

    def encode_batch(self, texts):
        return [[int(text.split("s")[-1]) + 4] for text in texts]


def hf_hidden_states(tables, tokens):
    """The 13 hidden states Hugging Face returns (embedding output first), B x T x C."""
    return [table[tokens] for table in tables]


def xtreme_tatoeba_accuracy(tables, specific_layer, xx_tokens, en_tokens):
    """What XTREME's evaluate_retrieval.py computes: mean-pooled `all_layer_outputs[-12:]
    [specific_layer]`, the xx side added to the index, English sentences searching it."""
    def pooled(tokens):
        layer = hf_hidden_states(tables, tokens)[-NUM_LAYERS:][specific_layer]
        return layer.mean(dim=1).numpy()

    x, y = pooled(xx_tokens), pooled(en_tokens)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    y /= np.linalg.norm(y, axis=1, keepdims=True)
    predictions = np.argmax(y @ x.T, axis=1)  # idx.add(x); idx.search(y, 1)
    return 100.0 * float(np.mean(predictions == np.arange(len(y))))


@pytest.fixture
def synthetic_retrieval(monkeypatch, tmp_path):
    generator = torch.Generator().manual_seed(0)
    vocab = 4 + 2 * N
    tables = []
    for _ in range(NUM_LAYERS + 1):
        table = torch.randn(vocab, DIM, generator=generator)
        table[:4] = 0  # specials add nothing to a mean's direction
        tables.append(table)
    # Transformer layer 8 (state 8) aligns translations, with noise that makes the two
    # directions differ; layer 7 (state 7, the old default) does not align them at all.
    tables[8][4 + N:] = tables[8][4:4 + N] + 1.1 * torch.randn(N, DIM, generator=generator)
    model = types.SimpleNamespace(encoder=FakeEncoder(tables), task_heads={})
    monkeypatch.setattr(retrieval_module, "load_encoder_for_inference", lambda pretrained: (model, None))
    pretrained = types.SimpleNamespace(num_layers=NUM_LAYERS, checkpoint="fake.pt")

    def evaluate(**options):
        args = types.SimpleNamespace(**{"layer": None, "representation": "layer", "max_seq_length": 16,
                                        "prefix": "", "english_prefix": None, **options})
        evaluation = RetrievalEvaluation(args, pretrained, FakeTextEncoder(), str(tmp_path))
        evaluation.pairs = {"xx": [(f"s{i}", f"s{N + i}") for i in range(N)]}
        return evaluation, evaluation.run_seed(None, None, None, None, ["xx"])["xx"]

    xx_tokens = torch.tensor([[0, 4 + i, 2] for i in range(N)])
    en_tokens = torch.tensor([[0, 4 + N + i, 2] for i in range(N)])
    return evaluate, tables, xx_tokens, en_tokens


def test_retrieval_default_is_xtreme_layer_and_direction(synthetic_retrieval):
    evaluate, tables, xx_tokens, en_tokens = synthetic_retrieval
    assert xtreme_default_layer(12) == 8 and xtreme_default_layer(24) == 14 and xtreme_default_layer(2) == 2
    evaluation, scores = evaluate()
    assert evaluation.extra_report["layer"] == 8 and evaluation.extra_report["xtreme_specific_layer"] == 7
    expected = xtreme_tatoeba_accuracy(tables, 7, xx_tokens, en_tokens)
    assert scores["accuracy"] == scores["en_to_xx"] == pytest.approx(expected)
    # the synthetic case separates the directions and the layers, so the test can fail
    assert scores["xx_to_en"] != scores["en_to_xx"]
    assert scores["mean_both_directions"] == pytest.approx((scores["xx_to_en"] + scores["en_to_xx"]) / 2)
    assert expected > 50 > xtreme_tatoeba_accuracy(tables, 6, xx_tokens, en_tokens)
    # --layer 7 is XTREME's --specific_layer 6
    _, old = evaluate(layer=7)
    assert old["accuracy"] == pytest.approx(xtreme_tatoeba_accuracy(tables, 6, xx_tokens, en_tokens))
    # predictions: for every English sentence, the index of the retrieved xx sentence
    hits = np.array(evaluation.predictions["xx"]) == np.arange(N)
    assert 100.0 * hits.mean() == pytest.approx(expected)


def test_retrieval_runs_only_the_layers_it_pools(synthetic_retrieval, monkeypatch):
    evaluate, *_ = synthetic_retrieval
    seen = []
    original = FakeEncoder.extract_features

    def spy(self, src_tokens, return_all_hiddens=True):
        seen.append(len(self.sentence_encoder.layers))
        return original(self, src_tokens, return_all_hiddens)

    monkeypatch.setattr(FakeEncoder, "extract_features", spy)
    evaluation, _ = evaluate()
    assert set(seen) == {8}
    model, _ = retrieval_module.load_encoder_for_inference(None)
    assert len(model.encoder.sentence_encoder.layers) == 12


def test_retrieval_prefix_reaches_the_tokenizer(synthetic_retrieval):
    evaluate, *_ = synthetic_retrieval
    seen = []

    class Recording(FakeTextEncoder):
        def encode_batch(self, texts):
            seen.extend(texts)
            return super().encode_batch(texts)

    evaluation, _ = evaluate(prefix="query: s")
    evaluation.text_encoder = Recording()
    evaluation._english_cache = {}
    evaluation.run_seed(None, None, None, None, ["xx"])
    assert seen and all(text.startswith("query: s") for text in seen)


# -- POS and NER as XTREME's evaluate.py scores them -------------------------------------------

def test_pos_f1_is_seqeval_over_upos_tags(shared_data):
    from seqeval.metrics import f1_score

    conllu = next((shared_data / "ud").rglob("de_gsd-ud-dev.conllu"))
    gold = [tags for _, tags in read_conllu(conllu)[:300]]
    rng = np.random.default_rng(0)
    tags = sorted({tag for sentence in gold for tag in sentence})
    pred = [[tag if rng.random() < 0.8 else str(rng.choice(tags)) for tag in sentence] for sentence in gold]
    expected = 100.0 * f1_score(gold, pred)
    assert pos_f1(gold, pred) == pytest.approx(expected, abs=1e-9)
    per_word = 100.0 * np.mean([p == g for ps, gs in zip(pred, gold) for p, g in zip(ps, gs)])
    assert abs(expected - per_word) > 0.1  # a different number from accuracy on the same predictions


def test_ner_chunk_counts_match_seqeval_and_keep_every_type(shared_data):
    from seqeval.metrics import f1_score

    gold = [tags for _, tags in read_iob2(next((shared_data / "masakhaner" / "v1").rglob("dev.txt")))[:300]]
    rng = np.random.default_rng(1)
    pred = [[tag if rng.random() < 0.85 else "B-DATE" for tag in sentence] for sentence in gold]
    counts = seqeval_chunk_counts(gold, pred)
    assert counts.shape == (len(gold), 3)
    assert f1_from_counts(counts) == pytest.approx(100.0 * f1_score(gold, pred), abs=1e-9)


# -- the paired bootstrap ----------------------------------------------------------------------

def _units(hits):
    return np.stack([np.asarray(hits, dtype=float), np.ones(len(hits))], axis=-1)[None]


def test_bootstrap_of_identical_runs_is_zero_width_at_zero():
    hits = np.random.default_rng(2).random(300) < 0.6
    result = paired_bootstrap({"de": _units(hits), "fr": _units(hits)}, {"de": _units(hits), "fr": _units(hits)})
    for entry in result.values():
        assert entry == {"difference": 0.0, "low": 0.0, "high": 0.0}


def test_bootstrap_of_a_clearly_better_run_is_above_zero():
    rng = np.random.default_rng(3)
    worse = rng.random(500) < 0.5
    better = worse | (rng.random(500) < 0.4)  # the better run fixes about 40% of the errors
    result = paired_bootstrap({"de": _units(worse)}, {"de": _units(better)})["de"]
    assert result["difference"] == pytest.approx(100.0 * (better.mean() - worse.mean()))
    assert 0 < result["low"] < result["difference"] < result["high"]


def test_bootstrap_matches_a_direct_computation():
    # 2 seeds x 5 items of (numerator, denominator), as seqeval F1 units would be
    a = np.array([[[2, 2], [0, 1], [2, 3], [1, 1], [0, 2]], [[2, 2], [1, 1], [0, 3], [1, 1], [2, 2]]], float)
    b = np.array([[[2, 2], [1, 1], [2, 3], [1, 1], [2, 2]], [[0, 2], [1, 1], [2, 3], [1, 1], [0, 2]]], float)
    samples, seed = 50, 7
    indices = np.random.default_rng(seed).integers(0, 5, size=(samples, 5))
    direct = []
    for draw in indices:
        def pooled(units):  # mean over seeds of sum(num) / sum(den) over the drawn items
            return np.mean([100.0 * sum(units[s, i, 0] for i in draw) / sum(units[s, i, 1] for i in draw)
                            for s in range(2)])
        direct.append(pooled(b) - pooled(a))
    result = paired_bootstrap({"de": a}, {"de": b}, samples=samples, seed=seed)["de"]
    assert result["low"] == pytest.approx(np.percentile(direct, 2.5))
    assert result["high"] == pytest.approx(np.percentile(direct, 97.5))
    full = np.arange(5)[None]
    assert result["difference"] == pytest.approx(_replicate_scores(b, full)[0] - _replicate_scores(a, full)[0])


def test_scoring_units_reproduce_the_scores(tmp_path):
    gold = [["B-PER", "I-PER", "O"], ["O", "B-LOC"]]
    pred = [["B-PER", "I-PER", "O"], ["B-ORG", "O"]]
    write_items(str(tmp_path / "gold.tsv"), "tags", gold)
    write_items(str(tmp_path / "pred.tsv"), "tags", pred)
    units = scoring_units("tags", "f1", str(tmp_path / "pred.tsv"), str(tmp_path / "gold.tsv"))
    # 1 correct of 2 predicted and 2 gold entities: F1 = 2 * 1 / (2 + 2) = 50
    assert units.tolist() == [[2.0, 2.0], [0.0, 2.0]] and 100 * units[:, 0].sum() / units[:, 1].sum() == 50
    accuracy = scoring_units("tags", "accuracy", str(tmp_path / "pred.tsv"), str(tmp_path / "gold.tsv"))
    assert accuracy[:, 0].sum() == 3 and len(accuracy) == 5
    shared = scoring_units("tags", "f1_shared_types", str(tmp_path / "pred.tsv"), str(tmp_path / "gold.tsv"),
                           keep_types=["PER"])
    assert 100 * shared[:, 0].sum() / shared[:, 1].sum() == 100  # ORG / LOC left out
    write_items(str(tmp_path / "answers.json"), "squad", {"q1": ["the cat"], "q2": ["a dog"]})
    write_items(str(tmp_path / "predicted.json"), "squad", {"q1": "cat", "q2": "mouse"})
    qa = scoring_units("squad", "f1", str(tmp_path / "predicted.json"), str(tmp_path / "answers.json"))
    assert qa.tolist() == [[1.0, 1.0], [0.0, 1.0]]
    assert json.loads((tmp_path / "predicted.json").read_text()) == {"q1": "cat", "q2": "mouse"}
