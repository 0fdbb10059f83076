"""Update cost of ``xsl_meta_mlm`` (per-batch language sampling, the phase switch, the
per-language logging) against fairseq's plain ``masked_lm`` on the same data and model.

    python benchmarks/bench_meta_mlm.py --data work/meta/small/data-bin/multi \
        --out benchmarks/bench_meta_mlm.json

Three configurations of ``fairseq-train``, each run ``--repeats`` times interleaved (A B C A B
C), each run in its own process, same model
(``--arch``), batch size, tokens per sample, seed and number of updates:

* ``masked_lm``: stock fairseq ``--task masked_lm --criterion masked_lm`` on ``DATA/<lang>``
  (one language directory is an ordinary fairseq mono directory);
* ``meta_phase1``: ``xsl_meta_mlm`` with every update in phase 1 (the same English data);
* ``meta_switch``: ``xsl_meta_mlm`` switching to smoothed multilingual sampling halfway.

Cost = median over the ``train_inner`` intervals after the first (which holds start-up) of
fairseq's own ``ups`` (updates / s) and ``wps`` (tokens / s), then the median over repeats; the batch plan is built when an
epoch starts, so its one-off cost is timed separately (in this process) for one epoch of
``DATA``. Tokens per update differ a little between the runs (different batches), which is
why words per second is the comparison; updates per second is reported too.
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time

from report import environment, write_report

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)
BIN_DIR = os.path.dirname(sys.executable)


def train(name, data, args, extra):
    command = [os.path.join(BIN_DIR, "fairseq-train"), data, "--arch", args.arch, *args.model_args.split(),
               "--tokens-per-sample", str(args.tokens_per_sample), "--sample-break-mode", "complete",
               "--optimizer", "adam", "--lr", "5e-4", "--lr-scheduler", "inverse_sqrt", "--warmup-updates", "10",
               "--batch-size", str(args.batch_size), "--max-update", str(args.updates), "--cpu",
               "--num-workers", "0", "--seed", "1", "--log-format", "json", "--log-interval",
               str(args.log_interval), "--disable-validation", "--no-save", *extra]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    start = time.time()
    proc = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{name} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    records = [json.loads(m) for m in re.findall(r"\| train_inner \| (\{.*\})", proc.stdout)][1:]
    ups = [float(r["ups"]) for r in records]
    wps = [float(r["wps"]) for r in records]
    return {"command": " ".join(command[1:]), "process_seconds": round(time.time() - start, 1),
            "intervals": len(records), "median_ups": statistics.median(ups),
            "median_wps": statistics.median(wps), "median_tokens_per_update": statistics.median(
                float(r["wpb"]) for r in records)}


def plan_cost(data, args) -> dict:
    """Seconds to build one epoch's batch plan for DATA (what an epoch start adds)."""
    import numpy as np
    from fairseq.data.indexed_dataset import MMapIndexedDataset

    from xsl_fairseq.data.meta_schedule import MetaBatchPlan, MetaSchedule, smoothed_sampling_probs

    languages = sorted(n for n in os.listdir(data) if os.path.isdir(os.path.join(data, n)))
    sizes = [len(MMapIndexedDataset(os.path.join(data, lang, "train"))) for lang in languages]
    batches = [[np.arange(i * args.batch_size, (i + 1) * args.batch_size) for i in range(-(-s // args.batch_size))]
               for s in sizes]
    schedule = MetaSchedule(tuple(languages), languages.index("en"), args.updates // 2, 0,
                            tuple(smoothed_sampling_probs([len(b) for b in batches], 0.3)))
    offsets = np.cumsum([0] + [len(b) * args.batch_size for b in batches[:-1]])
    per_epoch = sum(len(b) for b in batches)
    plan = MetaBatchPlan(schedule, batches, offsets, per_epoch, 1, seed=1)
    start = time.perf_counter()
    plan.batches(1)
    return {"batches_per_epoch": per_epoch, "seconds": round(time.perf_counter() - start, 4)}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="DATA of xsl_meta_mlm (one directory per language)")
    parser.add_argument("--language", default="en", help="the language masked_lm and phase 1 train on")
    parser.add_argument("--arch", default="roberta")
    parser.add_argument("--model-args", default="--encoder-layers 2 --encoder-embed-dim 128 "
                        "--encoder-ffn-embed-dim 512 --encoder-attention-heads 2")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--tokens-per-sample", type=int, default=64)
    parser.add_argument("--updates", type=int, default=100)
    parser.add_argument("--log-interval", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=2, help="interleaved runs of each configuration")
    parser.add_argument("--out", default=os.path.join(REPO_ROOT, "benchmarks", "bench_meta_mlm.json"))
    args = parser.parse_args()

    meta = ["--user-dir", os.path.join(REPO_ROOT, "xsl_fairseq"), "--task", "xsl_meta_mlm",
            "--criterion", "xsl_meta_mlm", "--meta-phase1-language", args.language]
    load = os.getloadavg()[0]
    configs = {
        "masked_lm": (os.path.join(args.data, args.language), ["--task", "masked_lm", "--criterion", "masked_lm"]),
        "meta_phase1": (args.data, meta + ["--meta-phase1-updates", str(args.updates)]),
        "meta_switch": (args.data, meta + ["--meta-phase1-updates", str(args.updates // 2)]),
    }
    # interleaved repeats (A B C A B C ...): a load change on the shared machine hits every configuration
    repeats = {name: [] for name in configs}
    for _ in range(args.repeats):
        for name, (data, extra) in configs.items():
            repeats[name].append(train(name, data, args, extra))
    runs = {name: {"repeats": r, "median_ups": statistics.median(x["median_ups"] for x in r),
                   "median_wps": statistics.median(x["median_wps"] for x in r)}
            for name, r in repeats.items()}
    base = runs["masked_lm"]
    ratios = {name: {"wps_ratio": round(r["median_wps"] / base["median_wps"], 3),
                     "ups_ratio": round(r["median_ups"] / base["median_ups"], 3)}
              for name, r in runs.items() if name != "masked_lm"}
    report = {"benchmark": "bench_meta_mlm", "environment": environment(),
              "load_average_before": load, "load_average_after": os.getloadavg()[0],
              "contended": load > 1.0, "updates": args.updates, "batch_size": args.batch_size,
              "arch": args.arch, "model_args": args.model_args, "runs": runs,
              "ratios_vs_masked_lm": ratios, "plan_build": plan_cost(args.data, args),
              "omp_num_threads": os.environ.get("OMP_NUM_THREADS")}
    print(json.dumps({"ratios_vs_masked_lm": ratios, "plan_build": report["plan_build"],
                      "load": [report["load_average_before"], report["load_average_after"]]}, indent=2))
    write_report(args.out, report)


if __name__ == "__main__":
    main()
