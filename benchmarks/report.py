"""What every benchmark in this folder records about the machine, and how it writes its JSON."""
import json
import os
import platform
import resource
import subprocess
import sys
import time

import torch


def environment() -> dict:
    """Machine facts that make a timing comparable (or not) with another run's."""
    return {
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "cuda_device": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "machine": platform.processor() or platform.machine(),
    }


def write_report(path: str, report: dict) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as out:
        json.dump(report, out, indent=2)
    print(f"wrote {path}")


def resident_mib() -> float:
    """This process's resident set size now."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_resident_mib() -> float:
    """This process's peak resident set size so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed_update(criterion, model, optimizer, sample, device: str):
    """What one fairseq-train update does, timed: criterion forward, backward of loss / sample
    size (fairseq multiplies gradients by 1 / sample_size), optimizer step. Returns
    ``(seconds, loss / sample size)``."""
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    loss, sample_size, _ = criterion(model, sample)
    (loss / max(float(sample_size), 1.0)).backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start, float(loss) / max(float(sample_size), 1.0)


def memory_fields(resident_before: float) -> dict:
    """Peak resident memory after the timed updates and its growth over ``resident_before``."""
    return {"peak_resident_mib": round(peak_resident_mib(), 1),
            "resident_before_first_update_mib": round(resident_before, 1),
            "peak_growth_mib": round(peak_resident_mib() - resident_before, 1)}


def run_in_worker(script: str, name: str, argv) -> dict:
    """Run ``script --worker name ARGV`` in its own process (so one configuration's peak memory
    does not hide another's) and return the JSON it printed after ``RESULT ``."""
    command = [sys.executable, os.path.abspath(script), "--worker", name, *argv]
    proc = subprocess.run(command, capture_output=True, text=True, env=dict(os.environ, PYTHONWARNINGS="ignore"))
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"{name} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def time_updates(criterion, model, optimizer, dataset, batch_size: int, warmup: int, updates: int, device: str,
                 prepare=None, what: str = "samples") -> dict:
    """``warmup`` untimed then ``updates`` timed updates on consecutive batches of ``batch_size``
    items of ``dataset`` in its ``ordered_indices()`` order (the same batches for every
    configuration); ``prepare(sample)`` may turn a collated batch into the criterion's input.
    Returns per-update seconds and non-pad tokens (timed updates), every update's loss / sample
    size, and the resident memory just before the first update."""
    from fairseq import utils

    order = dataset.ordered_indices()
    if len(order) < (warmup + updates) * batch_size:
        raise SystemExit(f"{len(order)} {what}, {(warmup + updates) * batch_size} needed")
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    seconds, tokens, losses = [], [], []
    resident_before = resident_mib()
    for update in range(warmup + updates):
        batch = order[update * batch_size:(update + 1) * batch_size]
        sample = dataset.collater([dataset[int(i)] for i in batch])
        sample = prepare(sample) if prepare else sample
        sample = utils.move_to_cuda(sample) if device == "cuda" else sample
        elapsed, loss_per_unit = timed_update(criterion, model, optimizer, sample, device)
        if update >= warmup:
            seconds.append(elapsed)
            tokens.append(int(sample["ntokens"]))
        losses.append(loss_per_unit)
    return {"seconds": seconds, "tokens": tokens, "losses": losses, "resident_before": resident_before}


def add_update_benchmark_arguments(parser, batch_help: str) -> None:
    """The options every update benchmark here shares (model, batch, repetitions, device)."""
    parser.add_argument("--arch", default="xsl_roberta_tiny")
    parser.add_argument("--model-args", default="",
                        help="extra model flags, written with '=': --model-args=--freeze-embeddings")
    parser.add_argument("--out", required=True, help="JSON result file")
    parser.add_argument("--batch-size", type=int, default=32, help=batch_help)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--updates", type=int, default=5)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--seed", type=int, default=1)
