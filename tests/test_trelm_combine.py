"""xsl-prep trelm-combine: the right half from each checkpoint, shared tensors averaged, mismatches refused."""
import pytest
import torch

from preprocess import InputError
from preprocess.trelm_combine import combine_checkpoints, combine_state_dicts


def fake_state(value: float, layers=4, vocab=10):
    state = {f"encoder.sentence_encoder.layers.{i}.fc1.weight": torch.full((3, 2), value + i) for i in range(layers)}
    state.update({
        "encoder.sentence_encoder.embed_tokens.weight": torch.full((vocab, 2), value),
        "encoder.trilayer.fc1.weight": torch.full((3, 2), 10 * value),
        "encoder.language_embeddings.weight": torch.full((2, 2), -value),
        "encoder.lm_head.bias": torch.full((vocab,), value),
        "encoder.trelm_version": torch.tensor([1]),
    })
    return state


def test_combine_picks_halves_and_averages_the_rest():
    upper, lower = fake_state(1.0), fake_state(3.0)
    combined = combine_state_dicts(upper, lower)
    for i in range(2):  # layers < L/2 from the lower-stage checkpoint
        assert torch.equal(combined[f"encoder.sentence_encoder.layers.{i}.fc1.weight"], torch.full((3, 2), 3.0 + i))
    for i in range(2, 4):  # layers >= L/2 from the upper-stage checkpoint
        assert torch.equal(combined[f"encoder.sentence_encoder.layers.{i}.fc1.weight"], torch.full((3, 2), 1.0 + i))
    assert torch.equal(combined["encoder.sentence_encoder.embed_tokens.weight"], torch.full((10, 2), 2.0))
    assert torch.equal(combined["encoder.trilayer.fc1.weight"], torch.full((3, 2), 20.0))
    assert torch.equal(combined["encoder.language_embeddings.weight"], torch.full((2, 2), -2.0))
    assert torch.equal(combined["encoder.trelm_version"], torch.tensor([1]))


def test_combine_refuses_other_shapes_and_bad_files(tmp_path):
    with pytest.raises(InputError, match=r"lm_head.bias: shape \(10,\) in upper but \(12,\) in lower"):
        combine_state_dicts(fake_state(1.0), fake_state(2.0, vocab=12))
    with pytest.raises(InputError, match="different tensors"):
        combine_state_dicts(fake_state(1.0), fake_state(2.0, layers=6))
    upper, lower = tmp_path / "upper.pt", tmp_path / "lower.pt"
    torch.save({"model": fake_state(1.0), "cfg": {"model": {}}}, upper)
    lower.write_bytes(upper.read_bytes()[:100])  # truncated
    with pytest.raises(InputError, match="cannot read the checkpoint"):
        combine_checkpoints(str(upper), str(lower), str(tmp_path / "out.pt"))
    torch.save({"model": fake_state(3.0), "cfg": {"model": {}}}, lower)
    report = combine_checkpoints(str(upper), str(lower), str(tmp_path / "out.pt"))
    assert report["layers"] == 4
    out = torch.load(tmp_path / "out.pt", weights_only=False)
    assert torch.equal(out["model"]["encoder.sentence_encoder.layers.0.fc1.weight"], torch.full((3, 2), 3.0))
