"""xsl_trelm_cdlm through real fairseq-train runs: every stage's loss falls, frozen parameters stay bit-identical."""
import re

import pytest
import torch

from conftest import REPO_ROOT, build_trelm_aligned, run_tool

STAGE_FROZEN = {  # state-dict groups each stage must leave untouched (notes §5)
    "commonality": ("lower", "upper"),
    "upper": ("lower",),
    "lower": ("upper",),
}


@pytest.fixture(scope="module")
def trelm_data(tiny_corpus, tiny_data_bin, tmp_path_factory):
    out = tmp_path_factory.mktemp("trelm-align")
    report = build_trelm_aligned(tiny_corpus, tiny_data_bin, out)
    # eflomal on 300 real pairs: most target pieces get a source
    assert report["splits"]["valid"]["pairs"] == 20
    assert report["splits"]["train"]["pairs"] + 20 + sum(report["drops"].values()) == 300
    assert report["aligned_target_piece_fraction"] > 0.6
    return out


def train(data, save_dir, stage, init=None, updates=16):
    args = [data, "--user-dir", REPO_ROOT / "xsl_fairseq", "--task", "xsl_trelm_cdlm", "--criterion", "xsl_trelm_cdlm",
            "--trelm-stage", stage, "--arch", "xsl_trelm_tiny", "--max-positions", "128",
            "--optimizer", "adam", "--lr", "1e-3", "--max-update", updates, "--batch-size", "16", "--cpu",
            "--save-dir", save_dir, "--log-format", "simple", "--log-interval", "4", "--no-epoch-checkpoints",
            "--disable-validation", "--num-workers", "0", "--seed", "3"]
    if init:
        args += ["--finetune-from-model", init]
    proc = run_tool("fairseq-train", *args)
    log = proc.stdout + proc.stderr
    losses = [float(v) for v in re.findall(r"train_inner \|.* loss=([\d.]+)", log)]
    trainable = re.search(r"TreLM stage \w+: (\d+) of (\d+) parameters trainable", log)
    return losses, int(trainable.group(1)), int(trainable.group(2))


def group_of(key: str, half: int) -> str:
    match = re.match(r"encoder\.sentence_encoder\.layers\.(\d+)\.", key)
    if match:
        return "lower" if int(match.group(1)) < half else "upper"
    return "other"


def test_every_stage_trains_and_freezes_its_table(trelm_data, tmp_path):
    losses, trainable, total = train(trelm_data, tmp_path / "language", "language")
    assert trainable == total and losses[-1] < losses[0], losses
    init = tmp_path / "language" / "checkpoint_last.pt"
    before = torch.load(init, map_location="cpu", weights_only=False)["model"]
    for stage, frozen in STAGE_FROZEN.items():
        losses, trainable, total = train(trelm_data, tmp_path / stage, stage, init=init)
        assert losses[-1] < losses[0], (stage, losses)
        after = torch.load(tmp_path / stage / "checkpoint_last.pt", map_location="cpu", weights_only=False)["model"]
        changed = {group_of(k, 1) for k in before if before[k].is_floating_point() and not torch.equal(before[k], after[k])}
        for group in frozen:
            keys = [k for k in before if group_of(k, 1) == group]
            assert keys and all(torch.equal(before[k], after[k]) for k in keys), (stage, group)
        assert "other" in changed  # embeddings, TRILayer and head train in every stage
        assert trainable < total
        assert not torch.equal(before["encoder.trilayer.fc1.weight"], after["encoder.trilayer.fc1.weight"])
        assert not torch.equal(before["encoder.language_embeddings.weight"], after["encoder.language_embeddings.weight"])
        if stage != "commonality":
            trained_half = "upper" if stage == "upper" else "lower"
            assert trained_half in changed, stage
