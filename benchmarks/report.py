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


def proc_status_mib(field: str):
    """``VmRSS`` / ``VmHWM`` (peak) of this process in MiB (Linux), or None."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def reset_peak_resident() -> bool:
    """Reset ``VmHWM`` to the current resident size (Linux >= 4.0: write 5 to ``/proc/self/clear_refs``), so
    that a later peak covers only what follows, not set-up work in the same process."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


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
    configuration); see :func:`time_batches` for ``prepare`` and what is returned."""
    order = dataset.ordered_indices()
    if len(order) < (warmup + updates) * batch_size:
        raise SystemExit(f"{len(order)} {what}, {(warmup + updates) * batch_size} needed")
    batches = (dataset.collater([dataset[int(i)] for i in order[k * batch_size:(k + 1) * batch_size]])
               for k in range(warmup + updates))
    return time_batches(criterion, model, optimizer, batches, warmup, updates, device, prepare)


def time_batches(criterion, model, optimizer, samples, warmup: int, updates: int, device: str,
                 prepare=None) -> dict:
    """``warmup`` untimed then ``updates`` timed updates on the collated batches of the iterable
    ``samples`` (taken lazily, one per update); ``prepare(sample)`` may turn a batch into the
    criterion's input (untimed). Returns per-update wall seconds, CPU seconds of this process
    (the work done: less disturbed than wall time by other processes on a shared machine) and
    non-pad tokens (``ntokens``) of the timed updates, every update's loss / sample size, and the
    resident memory just before the first update."""
    from fairseq import utils

    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    seconds, cpu_seconds, tokens, losses = [], [], [], []
    resident_before = resident_mib()
    samples = iter(samples)
    for update in range(warmup + updates):
        try:
            sample = next(samples)
        except StopIteration:
            raise SystemExit(f"{update} batches, {warmup + updates} needed") from None
        sample = prepare(sample) if prepare else sample
        sample = utils.move_to_cuda(sample) if device == "cuda" else sample
        cpu_start = time.process_time()
        elapsed, loss_per_unit = timed_update(criterion, model, optimizer, sample, device)
        if update >= warmup:
            seconds.append(elapsed)
            cpu_seconds.append(time.process_time() - cpu_start)
            tokens.append(int(sample["ntokens"]))
        losses.append(loss_per_unit)
    return {"seconds": seconds, "cpu_seconds": cpu_seconds, "tokens": tokens, "losses": losses,
            "resident_before": resident_before}


def bert_masked_batch(rows, dictionary, rng, mask_prob: float = 0.15) -> dict:
    """A fairseq ``masked_lm`` batch of the 1-D token arrays ``rows``: ``mask_prob`` of each
    row's non-special tokens are predicted (at least one in expectation of rounding, as fairseq's
    ``MaskTokensDataset``), 80% of them replaced by ``<mask>``, 10% by a random token, 10% kept;
    ``rng`` is a ``numpy.random.RandomState``."""
    import numpy as np
    from fairseq.data import data_utils

    inputs, targets = [], []
    mask_idx = dictionary.index("<mask>")
    for row in rows:
        tokens = np.array(row, dtype=np.int64)
        candidates = np.flatnonzero(tokens >= dictionary.nspecial)
        chosen = rng.choice(candidates, min(len(candidates), int(mask_prob * len(candidates) + rng.rand())),
                            replace=False)
        target = np.full_like(tokens, dictionary.pad())
        target[chosen] = tokens[chosen]
        roll = rng.rand(len(chosen))
        tokens[chosen[roll < 0.8]] = mask_idx
        random_positions = chosen[(roll >= 0.8) & (roll < 0.9)]
        tokens[random_positions] = rng.randint(dictionary.nspecial, mask_idx, size=len(random_positions))
        inputs.append(torch.from_numpy(tokens))
        targets.append(torch.from_numpy(target))
    return {
        "net_input": {"src_tokens": data_utils.collate_tokens(inputs, dictionary.pad()),
                      "src_lengths": torch.tensor([len(r) for r in inputs])},
        "target": data_utils.collate_tokens(targets, dictionary.pad()),
        "ntokens": sum(len(r) for r in inputs),
        "nsentences": len(inputs),
    }


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
