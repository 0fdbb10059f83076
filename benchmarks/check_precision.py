"""InfoNCE and CZ-NCE under fp16 / bf16 autocast against an fp64 reference (not a test).

The shared contrastive module computes cosine logits and both losses in fp32 even when
the encoder runs in half precision. This script shows what that buys on the device at
hand (CUDA autocast where available, else CPU bf16 autocast): for a batch whose positives
already dominate (cosine 0.999 at temperature 0.05, the regime where InfoNCE saturates),
it compares

* ``module``: ``cosine_logits`` + ``contrastive_loss`` on half-precision features under
  autocast (what the criterions run),
* ``naive_half``: the same formulas evaluated in the half dtype itself,

with an fp64 reference: loss, and the gradient with respect to the features.

    python benchmarks/check_precision.py --out work/precision.json
"""
import argparse
import json

import torch
import torch.nn.functional as F

from report import environment, write_report
from xsl_fairseq.modules.contrastive import contrastive_loss, cosine_logits


def aligned_pairs(n: int, dim: int, noise: float, seed: int):
    generator = torch.Generator().manual_seed(seed)
    anchors = torch.randn(n, dim, generator=generator, dtype=torch.float64)
    positives = anchors + noise * torch.randn(n, dim, generator=generator, dtype=torch.float64)
    return anchors, positives


def two_way(features_x, features_y, temperature, kind, logits_fn, loss_fn):
    """The symmetric 2n-item setting of ML-CTL / CACR: each item's positive is its pair."""
    items = torch.cat([features_x, features_y])
    n = features_x.size(0)
    logits = logits_fn(items, items, temperature)
    positive = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(items.device)
    excluded = torch.eye(2 * n, dtype=torch.bool, device=items.device)
    loss, _ = loss_fn(logits, positive, excluded, kind)
    return loss.sum()


def naive_cosine_logits(queries, keys, temperature):
    return F.normalize(queries, dim=-1) @ F.normalize(keys, dim=-1).t() / temperature


def naive_loss(logits, positive, excluded, kind):
    """The same formulas in the logits' own dtype (no upcast)."""
    positive_logit = logits.gather(1, positive.unsqueeze(1)).squeeze(1)
    is_positive = F.one_hot(positive, logits.size(1)).bool()
    negatives = logits.masked_fill(excluded | is_positive, float("-inf"))
    negative_lse = torch.logsumexp(negatives, dim=1)
    if kind == "infonce":
        return torch.logaddexp(positive_logit, negative_lse) - positive_logit, None
    return negative_lse - positive_logit, None


def evaluate(kind, dtype, device, args):
    x64, y64 = aligned_pairs(args.batch, args.dim, args.noise, args.seed)

    def run(x, y, logits_fn, loss_fn, autocast_dtype=None):
        x = x.clone().to(device).requires_grad_(True)
        y = y.clone().to(device).requires_grad_(True)
        with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            loss = two_way(x, y, args.temperature, kind, logits_fn, loss_fn)
        loss.backward()
        return loss.double().item(), torch.cat([x.grad, y.grad]).double().cpu()

    half_x, half_y = x64.to(dtype), y64.to(dtype)
    # the reference sees the same rounded features: errors below are the computation's own
    ref_loss, ref_grad = run(half_x.double(), half_y.double(), cosine_logits, contrastive_loss)
    results = {"reference_fp64": {"loss": ref_loss, "grad_norm": ref_grad.norm().item()}}
    for name, (loss, grad) in {
        "module": run(half_x, half_y, cosine_logits, contrastive_loss, dtype),
        "naive_half": run(half_x, half_y, naive_cosine_logits, naive_loss),
    }.items():
        results[name] = {
            "loss": loss,
            "loss_abs_error": abs(loss - ref_loss),
            "grad_norm": grad.norm().item(),
            "grad_relative_error": ((grad - ref_grad).norm() / ref_grad.norm().clamp_min(1e-30)).item(),
            "grad_all_zero": bool(grad.abs().max() == 0),
        }
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=64, help="pairs (2x items)")
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--noise", type=float, default=0.03, help="positive = anchor + noise * N(0, 1)")
    parser.add_argument("--temperature", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtypes = {"float16": torch.float16, "bfloat16": torch.bfloat16} if device.type == "cuda" else \
        {"bfloat16": torch.bfloat16}
    results = {f"{kind}/{name}": evaluate(kind, dtype, device, args)
               for kind in ("infonce", "cz_nce") for name, dtype in dtypes.items()}
    report = {"benchmark": "contrastive losses under half precision vs fp64", "device": device.type,
              **environment(), **{k: v for k, v in vars(args).items() if k != "out"}, "results": results}
    write_report(args.out, report)
    for name, result in results.items():
        print(name, json.dumps({k: {m: float(f"{v:.4g}") if isinstance(v, float) else v for m, v in r.items()}
                                for k, r in result.items()}))


if __name__ == "__main__":
    main()
