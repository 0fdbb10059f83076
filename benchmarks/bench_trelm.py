"""Words per second and peak memory of one TreLM CdLM training update vs a masked-LM update on the same
backbone and the same sentence pairs.

    xsl-prep trelm-align ... --destdir work/trelm/align
    python benchmarks/bench_trelm.py --data work/trelm/align --arch xsl_trelm_tiny --batch-size 32 \
        --out work/trelm/bench_trelm_tiny.json

Configurations (each in its own process, so one's peak resident memory does not hide the other's):

* ``masked_lm``: ``xsl_roberta`` with the backbone shape of ``--arch`` (L layers), ``xsl_masked_lm`` over
  both sides of the n pairs (2n masked sentences; fairseq's masked-LM loss).
* ``trelm_masked_lm``: the same batch through ``xsl_trelm`` (L + 1 layers, the TRILayer included).
* ``cdlm``: ``xsl_trelm`` with ``--criterion xsl_trelm_cdlm`` on the ``--trelm-stage upper`` batch of the
  same pairs: the CdLM example (unmasked English in, German predicted at every German position) plus the
  MLM example on the German side.

Every configuration sees the same tokens per update (each pair's English and German sentence once; fairseq's
``wps`` count). All parameters are trained (stage freezing would only lower the cost). Expected cost of
``cdlm`` relative to ``masked_lm``: the encoder runs (L + 1) / L layers, plus the gather into target order
(a copy of one T x B x C tensor); on top of that the CdLM half predicts *every* target token through the
LM head instead of 15% of them, so the output-projection work grows with the vocabulary. The report gives
the measured ratio, the layer bound and the predicted-token counts, so the difference can be attributed.
After ``--warmup`` untimed updates, ``--updates`` updates are timed (forward, backward, fairseq's Adam).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import torch

from report import environment, peak_resident_mib, resident_mib, write_report

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)

# configuration -> (stage whose batch it trains on, model family)
CONFIGURATIONS = {"masked_lm": ("commonality", "roberta"), "trelm_masked_lm": ("commonality", "trelm"),
                  "cdlm": ("upper", "trelm")}


def run_worker(name: str, args) -> dict:
    from fairseq import options, tasks
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf
    from fairseq.optim.adam import Adam

    from xsl_fairseq.criterions.xsl_masked_lm import XslMaskedLMCriterion
    from xsl_fairseq.models.xsl_roberta import XslRobertaModel

    torch.set_num_threads(args.threads)
    stage, family = CONFIGURATIONS[name]
    flags = [args.data, "--user-dir", os.path.join(REPO_ROOT, "xsl_fairseq"), "--task", "xsl_trelm_cdlm",
             "--criterion", "xsl_trelm_cdlm", "--trelm-stage", stage, "--arch", args.arch, "--seed", str(args.seed),
             "--max-positions", "128", "--cpu"]
    parsed = options.parse_args_and_arch(options.get_training_parser(), flags)
    cfg = convert_namespace_to_omegaconf(parsed)
    task = tasks.setup_task(cfg.task)
    task.load_dataset("train")
    torch.manual_seed(args.seed)
    if family == "trelm":
        model = task.build_model(cfg.model)
        criterion = task.build_criterion(cfg.criterion)
    else:
        model = XslRobertaModel.build_model(parsed, task)  # the same backbone shape without the TRILayer
        criterion = XslMaskedLMCriterion(task)
    for param in model.parameters():
        param.requires_grad_(True)  # compare the objectives, not the stage freezing
    model.train()
    optimizer = Adam(list(model.parameters()), lr=1e-5, betas=(0.9, 0.98), eps=1e-6, weight_decay=0.01)
    dataset = task.datasets["train"]
    dataset.set_epoch(1)
    order = dataset.ordered_indices()
    total = args.warmup + args.updates
    if len(order) < total * args.batch_size:
        raise SystemExit(f"{args.data}: {len(order)} pairs, {total * args.batch_size} needed")
    # the same pairs for every configuration: evenly spaced over the length-sorted order
    picks = order[torch.linspace(0, len(order) - 1, total * args.batch_size).long().numpy()]
    seconds, tokens, predicted = [], [], []
    resident_before = resident_mib()
    for update in range(total):
        sample = dataset.collater([dataset[int(i)] for i in picks[update * args.batch_size:(update + 1) * args.batch_size]])
        start = time.perf_counter()
        if family == "roberta":  # xsl_masked_lm reads net_input/target at the top level
            sample = {**sample["mlm"], "ntokens": sample["ntokens"], "nsentences": sample["nsentences"]}
        loss, sample_size, _ = criterion(model, sample)
        (loss / max(float(sample_size), 1.0)).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        elapsed = time.perf_counter() - start
        if update >= args.warmup:
            seconds.append(elapsed)
            tokens.append(int(sample["ntokens"]))
            predicted.append(int(sample_size))
    layers = len(model.encoder.sentence_encoder.layers)
    return {
        "configuration": name, "stage_batch": stage, "model": type(model).__name__,
        "encoder_layers_run": layers + (1 if family == "trelm" else 0),
        "seconds_per_update": statistics.mean(seconds), "seconds_per_update_each": seconds,
        "words_per_update": statistics.mean(tokens), "words_per_second": sum(tokens) / sum(seconds),
        "predicted_tokens_per_update": statistics.mean(predicted),
        "peak_resident_mib": round(peak_resident_mib(), 1),
        "resident_before_first_update_mib": round(resident_before, 1),
        "peak_growth_mib": round(peak_resident_mib() - resident_before, 1),
        "parameters": sum(p.numel() for p in model.parameters()),
        "vocabulary": len(task.dictionary), "backbone_layers": layers,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="xsl-prep trelm-align output (train split used)")
    parser.add_argument("--arch", default="xsl_trelm_tiny", help="an xsl_trelm arch (the baseline uses its shape)")
    parser.add_argument("--out", required=True, help="JSON result file")
    parser.add_argument("--batch-size", type=int, default=32, help="sentence pairs per update")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--updates", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--worker", choices=sorted(CONFIGURATIONS), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print("RESULT " + json.dumps(run_worker(args.worker, args)), flush=True)
        return
    results, load_before = {}, os.getloadavg()
    for name in CONFIGURATIONS:
        command = [sys.executable, os.path.abspath(__file__), "--worker", name,
                   *(argv if argv is not None else sys.argv[1:])]
        proc = subprocess.run(command, capture_output=True, text=True, env=dict(os.environ, PYTHONWARNINGS="ignore"))
        lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
        if proc.returncode != 0 or not lines:
            raise SystemExit(f"{name} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
        results[name] = json.loads(lines[-1][len("RESULT "):])
        r = results[name]
        print(f"{name}: {r['words_per_second']:.0f} words/s, {r['seconds_per_update']:.3f} s/update, "
              f"{r['predicted_tokens_per_update']:.0f} predicted tokens, peak RSS {r['peak_resident_mib']} MiB "
              f"(+{r['peak_growth_mib']} MiB)", flush=True)
    base, layers = results["masked_lm"], results["masked_lm"]["backbone_layers"]
    ratios = {name: {"words_per_second_vs_masked_lm": round(r["words_per_second"] / base["words_per_second"], 3),
                     "peak_growth_vs_masked_lm": round(r["peak_growth_mib"] / max(base["peak_growth_mib"], 1e-9), 3),
                     "predicted_tokens_vs_masked_lm": round(r["predicted_tokens_per_update"]
                                                            / base["predicted_tokens_per_update"], 3)}
              for name, r in results.items() if name != "masked_lm"}
    report = {
        "benchmark": "one training update (forward + backward + Adam step): TreLM CdLM vs masked LM, same pairs",
        "data": os.path.abspath(args.data), "arch": args.arch, "batch_size_pairs": args.batch_size,
        "warmup_updates": args.warmup, "timed_updates": args.updates, "threads": args.threads,
        "pass_count_bound": {
            "encoder_layers_ratio": f"({layers}+1)/{layers} = {round((layers + 1) / layers, 3)}",
            "expected_words_per_second_ratio_from_layers_alone": round(layers / (layers + 1), 3),
            "plus": "the gather into target order (one T x B x C copy) and the LM head over every CdLM target token",
        },
        "ratios": ratios, "results": results, "environment": environment(),
        "load_average_before": load_before, "load_average_after": os.getloadavg(),
    }
    write_report(args.out, report)


if __name__ == "__main__":
    main()
