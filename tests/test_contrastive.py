"""InfoNCE / CZ-NCE against hand computation, and the cross-rank gather under 2 gloo ranks."""
import math

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from xsl_fairseq.modules.contrastive import contrastive_loss, cosine_logits, gather_across_ranks


def test_losses_match_hand_computation():
    logits = torch.tensor([[2.0, 0.5, -1.0], [0.0, 1.0, 3.0]])
    positive = torch.tensor([0, 1])
    info, hits = contrastive_loss(logits, positive, kind="infonce")
    cz, _ = contrastive_loss(logits, positive, kind="cz_nce")
    expected_info_0 = -math.log(math.exp(2.0) / (math.exp(2.0) + math.exp(0.5) + math.exp(-1.0)))
    expected_cz_0 = math.log(math.exp(0.5) + math.exp(-1.0)) - 2.0
    expected_cz_1 = math.log(math.exp(0.0) + math.exp(3.0)) - 1.0
    assert info[0].item() == pytest.approx(expected_info_0, rel=1e-6)
    assert cz[0].item() == pytest.approx(expected_cz_0, rel=1e-6)
    assert cz[1].item() == pytest.approx(expected_cz_1, rel=1e-6)
    assert hits.tolist() == [True, False]


def test_cz_nce_crosses_zero_and_infonce_does_not():
    logits = torch.tensor([[5.0, 0.0, 0.0]])  # positive far above both negatives
    cz, _ = contrastive_loss(logits, torch.tensor([0]), kind="cz_nce")
    info, _ = contrastive_loss(logits, torch.tensor([0]), kind="infonce")
    assert cz.item() == pytest.approx(math.log(2) - 5.0) and cz.item() < 0
    assert info.item() > 0


def test_excluded_candidates_are_neither_positive_nor_negative():
    logits = torch.tensor([[9.0, 1.0, 0.0]])  # candidate 0 is the anchor itself
    excluded = torch.tensor([[True, False, False]])
    loss, hits = contrastive_loss(logits, torch.tensor([1]), excluded, kind="cz_nce")
    assert loss.item() == pytest.approx(0.0 - 1.0)
    assert hits.item()


def test_cz_nce_keeps_a_gradient_where_half_precision_infonce_saturates():
    # The positive is nearly parallel to the anchor, the negatives nearly opposite; at
    # temperature 0.07 InfoNCE's softmax is 1 - 1e-12, so in fp16 its loss rounds to zero.
    anchor = torch.tensor([[1.0, 0.1]])
    keys = torch.tensor([[1.0, 0.3], [-1.0, 0.2], [-1.0, -0.3]])
    half_logits = cosine_logits(anchor, keys, 0.07).half()
    half_info = -torch.log_softmax(half_logits, dim=1)[0, 0]
    assert half_info.item() == 0.0

    anchor = anchor.clone().requires_grad_(True)
    cz, _ = contrastive_loss(cosine_logits(anchor.half(), keys.half(), 0.07), torch.tensor([0]), kind="cz_nce")
    cz.sum().backward()
    cos = torch.nn.functional.cosine_similarity(anchor.detach().double(), keys.double())
    expected = torch.logsumexp(cos[1:] / 0.07, 0) - cos[0] / 0.07
    assert cz.item() < 0 and cz.item() == pytest.approx(expected.item(), abs=0.05)  # negative, unscaled
    assert anchor.grad.abs().sum() > 0 and torch.isfinite(anchor.grad).all()


def test_cosine_logits_stay_fp32_under_autocast():
    # under --amp autocast would redo the product in half precision; a logit near 1/0.05 = 20
    # then carries bf16's ~0.1 error, as large as the gap between a good and a bad negative
    generator = torch.Generator().manual_seed(0)
    queries, keys = torch.randn(16, 64, generator=generator), torch.randn(16, 64, generator=generator)
    reference = cosine_logits(queries.double(), keys.double(), 0.05)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = cosine_logits(queries, keys, 0.05)
    assert logits.dtype == torch.float32
    assert (logits.double() - reference).abs().max() < 1e-4


def test_gather_without_process_group_is_identity():
    local = torch.randn(3, 4)
    rows, offset = gather_across_ranks(local)
    assert rows is local and offset == 0


def _symmetric_cz_loss(x, y, offset, global_x, global_y):
    """ML-CTL-style loss of the local anchors against all global candidates."""
    candidates = torch.cat([global_x, global_y])
    n_global, n_local = global_x.size(0), x.size(0)
    anchors = torch.cat([x, y])
    logits = cosine_logits(anchors, candidates, 0.07)
    local_ids = torch.arange(n_local) + offset
    self_index = torch.cat([local_ids, local_ids + n_global])
    positive = torch.cat([local_ids + n_global, local_ids])
    excluded = torch.nn.functional.one_hot(self_index, 2 * n_global).bool()
    loss, _ = contrastive_loss(logits, positive, excluded, kind="cz_nce")
    return loss.sum()


def _rank_worker(rank, init_file, xs, ys, splits, out):
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    lo, hi = splits[rank], splits[rank + 1]
    x = xs[lo:hi].clone().requires_grad_(True)
    y = ys[lo:hi].clone().requires_grad_(True)
    global_x, offset = gather_across_ranks(x)
    global_y, _ = gather_across_ranks(y)
    loss = _symmetric_cz_loss(x, y, offset, global_x, global_y)
    loss.backward()
    total = loss.detach().clone()
    dist.all_reduce(total)
    out[rank] = {"loss": total.item(), "grad_x": x.grad.clone(), "grad_y": y.grad.clone(), "offset": offset}
    dist.destroy_process_group()


def test_two_rank_gather_equals_one_rank_joined_batch(tmp_path):
    torch.manual_seed(0)
    xs, ys = torch.randn(7, 5), torch.randn(7, 5)
    splits = [0, 4, 7]  # uneven shards, as token-based batching gives
    out = mp.Manager().dict()
    mp.spawn(_rank_worker, args=(str(tmp_path / "store"), xs, ys, splits, out), nprocs=2, join=True)

    x, y = xs.clone().requires_grad_(True), ys.clone().requires_grad_(True)
    joined = _symmetric_cz_loss(x, y, 0, x, y)
    joined.backward()
    assert out[0]["loss"] == pytest.approx(joined.item(), rel=1e-5)
    assert out[1]["offset"] == 4
    grad_x = torch.cat([out[0]["grad_x"], out[1]["grad_x"]])
    grad_y = torch.cat([out[0]["grad_y"], out[1]["grad_y"]])
    assert torch.allclose(grad_x, x.grad, atol=1e-5)
    assert torch.allclose(grad_y, y.grad, atol=1e-5)
