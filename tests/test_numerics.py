"""Every contrastive and KL loss under autocast (bf16 on CPU, fp16 on CUDA) with extreme
similarities: finite, with a non-zero gradient wherever the exact gradient is non-zero, and
equal (loss and gradient) to the same loss computed in fp32 from the same half-precision
vectors, i.e. the losses' own arithmetic (cosine logits, logsumexp, log-softmax) is fp32.

The vectors come out of an identity projection run under autocast, as a model's pooled states
do (half precision), and the losses run on them at temperature 0.01 (logits up to +-100, whose
exponentials overflow fp16 and fp32). Geometries, for n anchor / positive pairs:

* ``identical``: each anchor equals its positive; the pairs point in random directions.
* ``orthogonal``: anchors and positives are all mutually orthogonal (every cosine 0).
* ``near_identical``: every vector is one base vector plus 1% noise (a collapsed
  representation): logits differ by ~0.01-0.5 around 100, below bf16's resolution there.
* ``collapsed``: every vector the same. Cosine has no gradient between parallel vectors, so
  the exact gradient is 0; the loss must still be finite (InfoNCE = log of the candidates).
"""
import math
from types import SimpleNamespace

import pytest
import torch

from xsl_fairseq.criterions.xsl_clism import cacr_loss
from xsl_fairseq.criterions.xsl_mlctl import XslMlctlCriterion, XslMlctlCriterionConfig
from xsl_fairseq.modules.contrastive import contrastive_loss, cosine_logits
from xsl_fairseq.modules.salt import consistency_kl

TEMPERATURE = 0.01
PAIRS, DIM = 4, 16
GEOMETRIES = ("identical", "orthogonal", "near_identical", "collapsed")

PRECISIONS = [
    pytest.param("cpu", torch.bfloat16, id="cpu-bf16"),
    pytest.param("cuda", torch.float16, id="cuda-fp16",
                 marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="fp16 autocast needs CUDA")),
]


def views(geometry: str, count: int, device) -> list:
    """``count`` views (n x DIM each) of the same n items: view k of item i is what the loss
    pairs with view k' of item i."""
    generator = torch.Generator().manual_seed(0)
    if geometry == "identical":
        base = torch.randn(PAIRS, DIM, generator=generator)
        out = [base.clone() for _ in range(count)]
    elif geometry == "orthogonal":
        basis = torch.eye(DIM)
        out = [basis[k * PAIRS:(k + 1) * PAIRS].clone() for k in range(count)]
    elif geometry == "near_identical":
        base = torch.randn(1, DIM, generator=generator)
        out = [base + 0.01 * torch.randn(PAIRS, DIM, generator=generator) for _ in range(count)]
    else:
        base = torch.randn(1, DIM, generator=generator)
        out = [base.expand(PAIRS, DIM).clone() for _ in range(count)]
    return [v.to(device) for v in out]


def run_under_autocast(loss_fn, inputs, device, dtype):
    """loss_fn applied to ``inputs`` passed through an identity projection under autocast;
    returns the loss (fp32), the inputs' gradients and the projection's weight gradient, and
    checks them against the loss computed in fp32 from the same half-precision vectors: the
    losses' own arithmetic must not lose precision (logits, logsumexp and KL in fp32)."""
    leaves = [x.clone().requires_grad_(True) for x in inputs]
    projection = torch.nn.Linear(DIM, DIM, bias=False).to(device)
    with torch.no_grad():
        projection.weight.copy_(torch.eye(DIM))
    with torch.autocast(device_type=device, dtype=dtype):
        projected = [projection(x) for x in leaves]
        assert all(p.dtype == dtype for p in projected)  # the loss sees half-precision vectors
        for p in projected:
            p.retain_grad()
        loss = loss_fn(*projected)
    loss.backward()

    exact = [p.detach().float().requires_grad_(True) for p in projected]
    reference = loss_fn(*exact)
    if reference.requires_grad:
        reference.backward()
    assert loss.item() == pytest.approx(reference.item(), rel=1e-5, abs=1e-5), (loss.item(), reference.item())
    for p, e in zip(projected, exact):
        if e.grad is not None:  # gradients reach the vectors in half precision: ~0.4% (bf16) per entry
            assert (p.grad.float() - e.grad).norm() <= 1e-2 * e.grad.norm() + 1e-4, (p.grad, e.grad)
    return loss.detach().float(), [x.grad for x in leaves] + [projection.weight.grad]


def infonce(a, b):
    return contrastive_loss(cosine_logits(a, b, TEMPERATURE), torch.arange(a.size(0), device=a.device))[0].sum()


def cz_nce(a, b):
    logits = cosine_logits(a, b, TEMPERATURE)
    return contrastive_loss(logits, torch.arange(a.size(0), device=a.device), kind="cz_nce")[0].sum()


def cacr(source, masked_source, target, symmetric=False):
    return cacr_loss(source, masked_source, target, TEMPERATURE, symmetric=symmetric).loss.sum()


def mlctl(kind):
    cfg = XslMlctlCriterionConfig(contrastive_loss=kind, contrastive_temperature=TEMPERATURE)
    task = SimpleNamespace(target_dictionary=SimpleNamespace(pad=lambda: 1), cfg=SimpleNamespace(levels="both"))
    criterion = XslMlctlCriterion(cfg, task)

    def loss(x, y):
        pair_id = torch.arange(x.size(0), device=x.device)
        return criterion.contrastive_terms(x, y, pair_id)[0].sum()

    return loss


CONTRASTIVE_LOSSES = {
    "infonce": (infonce, 2),
    "cz_nce": (cz_nce, 2),
    "cacr": (cacr, 3),
    "cacr_symmetric": (lambda s, m, t: cacr(s, m, t, symmetric=True), 3),
    "mlctl_cz_nce": (mlctl("cz_nce"), 2),
    "mlctl_infonce": (mlctl("infonce"), 2),
}


@pytest.mark.parametrize("device,dtype", PRECISIONS)
@pytest.mark.parametrize("geometry", GEOMETRIES)
@pytest.mark.parametrize("name", list(CONTRASTIVE_LOSSES))
def test_contrastive_losses_are_finite_with_a_gradient(name, geometry, device, dtype):
    loss_fn, count = CONTRASTIVE_LOSSES[name]
    inputs = views(geometry, count, device)
    loss, grads = run_under_autocast(loss_fn, inputs, device, dtype)
    assert loss.dtype == torch.float32 and torch.isfinite(loss), loss
    assert all(torch.isfinite(g).all() for g in grads), name
    if geometry == "collapsed":
        if name.endswith("infonce"):  # every candidate ties with the positive
            candidates = 2 * PAIRS - 1 if name.startswith("mlctl") else PAIRS  # ML-CTL: both sides minus self
            assert loss.item() == pytest.approx(PAIRS * (2 if name.startswith("mlctl") else 1)
                                                * math.log(candidates), rel=1e-3)
        return
    assert all(g.abs().sum() > 0 for g in grads), (name, geometry, [float(g.abs().sum()) for g in grads])


@pytest.mark.parametrize("device,dtype", PRECISIONS)
@pytest.mark.parametrize("geometry", GEOMETRIES)
def test_salt_consistency_kl_is_finite_with_a_gradient(geometry, device, dtype):
    """SALT's KL(p_clean || p_aug) on half-precision classifier logits (DIM classes) at scale
    1/0.01: identical logits give KL 0 (its minimum: gradient 0); orthogonal ones (clean on
    class i, augmented on class PAIRS + i) a saturated, confidently wrong student."""

    logits = [v / TEMPERATURE for v in views(geometry, 2, device)]  # the projection emits them in half precision
    loss, (clean_grad, *grads) = run_under_autocast(consistency_kl, logits, device, dtype)
    assert clean_grad is None  # the clean prediction is the teacher: no gradient flows into it
    assert loss.dtype == torch.float32 and torch.isfinite(loss) and loss.item() >= -1e-4, loss
    assert all(torch.isfinite(g).all() for g in grads)
    if geometry in ("identical", "collapsed"):
        assert loss.item() == pytest.approx(0.0, abs=1e-4)
        return
    assert all(g.abs().sum() > 0 for g in grads)  # the student and the projection learn
    if geometry == "orthogonal":  # p_clean = one-hot (to e^-100), log p_aug there = -100
        assert loss.item() == pytest.approx(PAIRS * 100.0, rel=1e-3)
