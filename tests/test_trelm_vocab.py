"""xsl-prep trelm-vocab: MUSE-style alignment math and the initial xsl_trelm checkpoint."""
import json

import pytest
import torch

from preprocess import InputError
from preprocess.embedding_alignment import AlignmentConfig, align_embeddings, csls_dictionary, procrustes
from preprocess.import_encoder import EncoderShape, build_fairseq_model, save_fairseq_checkpoint
from preprocess.spm import train_sentencepiece
from preprocess.trelm_vocab import build_vocabulary

SMALL = dict(epochs=2, epoch_size=128, dis_hidden=32, refinement_iterations=3, dico_max_rank=400,
             selection_words=400)


def test_procrustes_and_csls_recover_a_rotation():
    generator = torch.Generator().manual_seed(0)
    target = torch.randn(400, 16, generator=generator)
    angle = torch.randn(16, 16, generator=generator) * 0.05
    rotation = torch.linalg.matrix_exp(angle - angle.t())  # a small random rotation Q
    source = target @ rotation.t()
    pairs = csls_dictionary(source, target, 10, torch.arange(400))
    assert (pairs[:, 0] == pairs[:, 1]).float().mean() > 0.9  # close enough that CSLS finds most pairs
    w = procrustes(source[pairs[:, 0]], target[pairs[:, 1]])
    assert torch.allclose(w, rotation.t(), atol=1e-3)
    result = align_embeddings(source, target, torch.arange(400), torch.arange(400), AlignmentConfig(**SMALL))
    assert [row["stage"] for row in result.history] == ["adversarial"] * 2 + ["refinement"] * 3
    assert result.best_criterion > 0.999
    assert torch.allclose(result.mapping @ result.mapping.t(), torch.eye(16), atol=1e-4)
    assert torch.allclose(source @ result.mapping.t(), target, atol=1e-2)


@pytest.fixture(scope="module")
def english_checkpoint(tiny_corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("english")
    train_sentencepiece([str(tiny_corpus["en"])], str(out / "spm"), vocab_size=400)
    shape = EncoderShape(layers=2, hidden=32, heads=2, ffn=64, max_positions=128)
    cfg, _, model = build_fairseq_model(str(out), "xsl_roberta_tiny", shape)
    save_fairseq_checkpoint(str(out / "model.pt"), cfg, model, {"test": True})
    return out


def test_trelm_vocab_writes_an_initial_trelm_checkpoint(tiny_corpus, english_checkpoint, tmp_path):
    english = torch.load(english_checkpoint / "model.pt", weights_only=False)["model"]
    report = build_vocabulary(str(english_checkpoint / "model.pt"), [str(tiny_corpus["en"])],
                              [str(tiny_corpus["de"])], str(tmp_path / "vocab"), vocab_size=500,
                              arch="xsl_trelm_tiny", fasttext_epochs=2, source_normalize="center",
                              align_rescale=True, alignment=AlignmentConfig(**SMALL))
    for name in ("model.pt", "dict.txt", "spm.model", "trelm_vocab.json"):
        assert (tmp_path / "vocab" / name).is_file()
    history = json.loads((tmp_path / "vocab" / "trelm_vocab.json").read_text())["history"]
    assert len(history) == 5 and all("criterion" in row for row in history)
    assert report["orthogonality_error"] < 1e-3
    state = torch.load(tmp_path / "vocab" / "model.pt", weights_only=False)
    model = state["model"]
    assert state["cfg"]["model"].arch == "xsl_trelm_tiny"
    embed = model["encoder.sentence_encoder.embed_tokens.weight"]
    assert embed.size(0) == report["vocabulary"]  # dict.txt + <mask>
    assert torch.equal(embed[:4], english["encoder.sentence_encoder.embed_tokens.weight"][:4])  # specials kept
    assert torch.equal(model["encoder.trilayer.fc1.weight"], english["encoder.sentence_encoder.layers.1.fc1.weight"])
    assert torch.count_nonzero(model["encoder.language_embeddings.weight"]) == 0
    assert torch.equal(model["encoder.sentence_encoder.layers.0.fc2.weight"],
                       english["encoder.sentence_encoder.layers.0.fc2.weight"])
    # rescaled to the English norm
    norms = embed[4:-1].norm(dim=1).mean()
    assert abs(float(norms) - report["english_mean_norm"]) < 0.05 * report["english_mean_norm"]


def test_trelm_vocab_bad_inputs(tiny_corpus, english_checkpoint, tmp_path):
    empty = tmp_path / "empty.de"
    empty.write_text("\n")
    with pytest.raises(InputError, match="empty.de: no text"):
        build_vocabulary(str(english_checkpoint / "model.pt"), [str(tiny_corpus["en"])], [str(empty)],
                         str(tmp_path / "v1"), vocab_size=500)
    truncated = tmp_path / "model.pt"
    truncated.write_bytes((english_checkpoint / "model.pt").read_bytes()[:1000])
    with pytest.raises(InputError, match="cannot read the checkpoint"):
        build_vocabulary(str(truncated), [str(tiny_corpus["en"])], [str(tiny_corpus["de"])], str(tmp_path / "v2"),
                         vocab_size=500)
    with pytest.raises(InputError, match="--lm-head"):
        build_vocabulary(str(english_checkpoint / "model.pt"), [str(tiny_corpus["en"])], [str(tiny_corpus["de"])],
                         str(tmp_path / "v3"), vocab_size=500, lm_head="random")
