"""Words per second and peak memory of one ML-CTL training update vs a masked-LM update on the
same model and the same sentences.

    xsl-prep mlctl-wps ... --destdir work/mlctl/wps
    python benchmarks/bench_mlctl.py --data work/mlctl/tiny/wps --arch xsl_roberta_tiny \
        --model-args=--max-positions=128 --batch-size 32 --out work/mlctl/bench_mlctl_tiny.json
    python benchmarks/bench_mlctl.py --data work/mlctl/e5/wps --arch xsl_e5_small \
        --model-args=--freeze-embeddings --batch-size 16 --out work/mlctl/bench_mlctl_e5.json

Configurations (each in its own process, so the peak resident memory of one does not hide
the other's):

* ``masked_lm``: the ``xsl_masked_lm`` criterion on the 2n sentences of the batch (x and y
  sides stacked, the task's masked copies): one forward and backward of 2n rows.
* ``mlctl``: ``--criterion xsl_mlctl`` defaults (``--levels both --contrastive-loss cz_nce
  --mlm-weight 0.1``): one contrastive pass over the 2n clean sentences plus the MLM passes
  over the masked x and y copies.
* ``mlctl_no_mlm``: the contrastive pass only (``--mlm-weight 0 --mask-prob 0``).

Every configuration builds the ``xsl_mlctl`` task and the ``--arch`` model from ``--data``
(the dictionary decides the vocabulary; weights are freshly initialised, which does not
change the cost), takes the same ``--batch-size`` samples per update from the training
split, and runs what one fairseq-train update does: forward and backward through the
criterion, gradients divided by the sample size, fairseq's Adam step. After ``--warmup``
untimed updates, ``--updates`` updates are timed. Words per second = non-pad tokens of the
x and y sentences / seconds per update (the same token count for every configuration, as
fairseq's ``wps`` counts them). Peak memory: the process's peak resident set size
(``ru_maxrss``) after the timed updates, and its growth over the resident size measured
just before the first update (activations, gradients, optimizer state); on CUDA,
``torch.cuda.max_memory_allocated``.
"""
import argparse
import json
import os
import shlex
import statistics
import sys

import torch

from report import add_update_benchmark_arguments, environment, memory_fields, run_in_worker, time_updates, write_report

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)

CONFIGURATIONS = {
    "masked_lm": [],
    "mlctl": [],
    "mlctl_no_mlm": ["--mlm-weight", "0", "--mask-prob", "0"],
}


def masked_lm_sample(sample: dict, pad: int) -> dict:
    """The masked x and y copies of an ML-CTL batch as one masked-LM batch of 2n rows."""
    inputs = [sample["x_mlm"]["net_input"]["src_tokens"], sample["y_mlm"]["net_input"]["src_tokens"]]
    targets = [sample["x_mlm"]["target"], sample["y_mlm"]["target"]]
    width = max(t.size(1) for t in inputs)

    def stack(tensors):
        return torch.cat([torch.nn.functional.pad(t, (0, width - t.size(1)), value=pad) for t in tensors])

    tokens = stack(inputs)
    return {"net_input": {"src_tokens": tokens, "src_lengths": tokens.ne(pad).sum(1)}, "target": stack(targets),
            "ntokens": sample["ntokens"], "nsentences": 2 * sample["nsentences"]}


def run_worker(name: str, args) -> dict:
    from fairseq import options, tasks
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf
    from fairseq.optim.adam import Adam

    from xsl_fairseq.criterions.xsl_masked_lm import XslMaskedLMCriterion

    torch.set_num_threads(args.threads)
    flags = [args.data, "--user-dir", os.path.join(REPO_ROOT, "xsl_fairseq"), "--task", "xsl_mlctl",
             "--criterion", "xsl_mlctl", "--arch", args.arch, "--seed", str(args.seed),
             *CONFIGURATIONS[name], *shlex.split(args.model_args)]
    if args.device == "cpu":
        flags.append("--cpu")
    parsed = options.parse_args_and_arch(options.get_training_parser(), flags)
    cfg = convert_namespace_to_omegaconf(parsed)
    task = tasks.setup_task(cfg.task)
    task.load_dataset("train")
    model = task.build_model(cfg.model).to(args.device)
    model.train()
    criterion = XslMaskedLMCriterion(task) if name == "masked_lm" else task.build_criterion(cfg.criterion)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = Adam(trainable, lr=1e-5, betas=(0.9, 0.98), eps=1e-6, weight_decay=0.01)

    dataset = task.datasets["train"]
    dataset.set_epoch(1)
    pad = task.dictionary.pad()

    def prepare(sample):
        if name != "masked_lm":
            return sample
        if "x_mlm" not in sample:  # masked_lm needs the task's masked copies even if mlctl_no_mlm has none
            raise SystemExit("masked_lm needs --mask-prob > 0")
        return masked_lm_sample(sample, pad)

    timed = time_updates(criterion, model, optimizer, dataset, args.batch_size, args.warmup, args.updates,
                         args.device, prepare=prepare, what=f"samples in {args.data}")
    seconds, tokens, losses = timed["seconds"], timed["tokens"], timed["losses"]
    result = {
        "configuration": name,
        "flags": CONFIGURATIONS[name] + shlex.split(args.model_args),
        "seconds_per_update": statistics.mean(seconds),
        "seconds_per_update_each": seconds,
        "words_per_update": statistics.mean(tokens),
        "words_per_second": sum(tokens) / sum(seconds),
        **memory_fields(timed["resident_before"]),
        "loss_per_sample_unit": losses,
        "parameters": sum(p.numel() for p in model.parameters()),
        "trainable_parameters": sum(p.numel() for p in trainable),
        "vocabulary": len(task.dictionary),
    }
    if args.device == "cuda":
        result["cuda_max_memory_allocated_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="xsl-prep mlctl-wps output (train split used)")
    add_update_benchmark_arguments(parser, batch_help="samples (sentence pairs) per update")
    parser.add_argument("--worker", choices=sorted(CONFIGURATIONS), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        print("RESULT " + json.dumps(run_worker(args.worker, args)), flush=True)
        return
    results = {}
    load_before = os.getloadavg()
    for name in CONFIGURATIONS:
        results[name] = run_in_worker(__file__, name, argv if argv is not None else sys.argv[1:])
        print(f"{name}: {results[name]['words_per_second']:.0f} words/s, {results[name]['seconds_per_update']:.3f} "
              f"s/update, peak RSS {results[name]['peak_resident_mib']} MiB "
              f"(+{results[name]['peak_growth_mib']} MiB over the model)", flush=True)
    baseline = results["masked_lm"]
    ratios = {name: {"words_per_second_vs_masked_lm": round(r["words_per_second"] / baseline["words_per_second"], 3),
                     "peak_growth_vs_masked_lm": round(r["peak_growth_mib"] / max(baseline["peak_growth_mib"], 1e-9), 3),
                     "peak_resident_vs_masked_lm": round(r["peak_resident_mib"] / baseline["peak_resident_mib"], 3)}
              for name, r in results.items() if name != "masked_lm"}
    report = {
        "benchmark": "one training update (forward + backward + Adam step): ML-CTL vs masked LM, same model and sentences",
        "data": os.path.abspath(args.data),
        "arch": args.arch,
        "model_args": args.model_args,
        "batch_size_samples": args.batch_size,
        "warmup_updates": args.warmup,
        "timed_updates": args.updates,
        "device": args.device,
        "torch_threads": args.threads,
        **environment(),
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "results": results,
        "ratios": ratios,
    }
    write_report(args.out, report)
    print(json.dumps(ratios, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
