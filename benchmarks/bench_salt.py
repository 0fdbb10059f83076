"""Step time and peak memory of one SALT fine-tuning update (``xsl_salt``) vs plain
``sentence_prediction`` on the same model and the same sentence-pair batches.

    python benchmarks/bench_salt.py --train ../shared/data/xnli/dev-en.tsv \
        --spm work/salt/e5/sentencepiece.bpe.model --dict work/salt/e5/dict.txt \
        --arch xsl_roberta_tiny --out benchmarks/bench_salt_tiny.json
    python benchmarks/bench_salt.py ... --arch xsl_e5_small --model-args=--freeze-embeddings \
        --out benchmarks/bench_salt_e5.json

Pass-count bound (what SALT adds to a plain update of B pairs):

* ``salt_online``: one extra MLM forward of the B masked rows without gradient (the model's
  own top-k substitutes) and one extra classification forward and backward (the B augmented
  rows, stacked with the B clean rows into one 2B forward), plus the KL term (negligible).
  So at most ~2x plain + one inference forward: about 2.3-3x plain when backward ~ 2x forward.
* ``salt_offline``: the code-switched copy is written once before training (its time is
  reported separately, ``offline_copy_seconds``), so an update is plain + one classification
  forward and backward: about 2x plain.

Every configuration runs in its own process (peak resident memory of one does not hide
another), builds the ``xsl_sentence_prediction`` task from a data directory written here
from ``--train`` (XTREME tsv, the items after ``--held-out-items``), a freshly initialised
``--arch`` model (weights do not change the cost) and fairseq's Adam, and times what one
fairseq-train update does: criterion forward + backward (gradients / sample size) + Adam step,
``--updates`` timed after ``--warmup`` untimed ones, the same batches for every configuration.
Peak memory: ``ru_maxrss`` after the timed updates and its growth over the resident size just
before the first update; on CUDA, ``torch.cuda.max_memory_allocated``.
"""
import argparse
import json
import os
import shlex
import statistics
import sys
import tempfile
import time
from types import SimpleNamespace

import torch

from report import add_update_benchmark_arguments, environment, memory_fields, run_in_worker, time_updates, write_report

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)

CONFIGURATIONS = {
    "sentence_prediction": ["--criterion", "sentence_prediction"],
    "salt_online": ["--criterion", "xsl_salt"],
    "salt_offline": ["--criterion", "xsl_salt", "--salt-substitutes", "offline", "--salt-mix-prob", "0"],
}
PASS_COUNT_BOUND = (
    "salt_online = plain + 1 MLM forward without gradient (B masked rows) + 1 classification forward and "
    "backward (B augmented rows, stacked with the clean rows); salt_offline = plain + 1 classification forward "
    "and backward (the copy is written once, offline_copy_seconds)"
)


def write_data(args, data_dir: str) -> int:
    """English pairs of ``--train`` in fairseq's sentence_prediction layout (as xsl-eval writes them)."""
    from xsl_fairseq.data.dictionary import load_dictionary
    from xsl_fairseq.evaluation.pretrained import TextEncoder
    from xsl_fairseq.evaluation.sentence_pair import SentencePairEvaluation

    eval_args = SimpleNamespace(train=args.train, held_out_items=args.held_out_items,
                                max_train_examples=args.max_train_examples, eval_dir=os.path.dirname(args.train),
                                split="dev", languages=["en"], max_eval_examples=8,
                                max_seq_length=args.max_seq_length, salt=None, fairseq_args="")
    evaluation = SentencePairEvaluation(eval_args, SimpleNamespace(dict_path=args.dict),
                                        TextEncoder(args.spm, load_dictionary(args.dict)), data_dir)
    evaluation.data_dir = data_dir
    evaluation.prepare()
    return len(evaluation.label_names)


def run_worker(name: str, args) -> dict:
    from fairseq import options, tasks
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf
    from fairseq.optim.adam import Adam

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    flags = [args.data, "--user-dir", os.path.join(REPO_ROOT, "xsl_fairseq"), "--task", "xsl_sentence_prediction",
             "--num-classes", str(args.num_classes), "--init-token", "0", "--separator-token", "2",
             "--arch", args.arch, "--max-positions", str(args.max_seq_length), "--seed", str(args.seed),
             *CONFIGURATIONS[name], *shlex.split(args.model_args)]
    if args.device == "cpu":
        flags.append("--cpu")
    cfg = convert_namespace_to_omegaconf(options.parse_args_and_arch(options.get_training_parser(), flags))
    task = tasks.setup_task(cfg.task)
    model = task.build_model(cfg.model).to(args.device)
    copy_seconds = None
    if name == "salt_offline":
        from xsl_fairseq.data.salt_augment import write_salt_augmented_copy

        copy_dir = tempfile.mkdtemp(prefix="salt_copy_")
        start = time.perf_counter()
        write_salt_augmented_copy(model, task.source_dictionary, args.data, copy_dir, batch_size=args.batch_size,
                                  seed=args.seed)
        copy_seconds = time.perf_counter() - start
        task.cfg.salt_augmented_data = copy_dir
    task.load_dataset("train")
    model.train()
    criterion = task.build_criterion(cfg.criterion)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = Adam(trainable, lr=1e-5, betas=(0.9, 0.98), eps=1e-6, weight_decay=0.01)

    dataset = task.datasets["train"]
    timed = time_updates(criterion, model, optimizer, dataset, args.batch_size, args.warmup, args.updates,
                         args.device, what=f"pairs in {args.data}")
    seconds, tokens, losses = timed["seconds"], timed["tokens"], timed["losses"]
    result = {
        "configuration": name,
        "flags": CONFIGURATIONS[name] + shlex.split(args.model_args),
        "seconds_per_update": statistics.mean(seconds),
        "seconds_per_update_each": seconds,
        "tokens_per_update": statistics.mean(tokens),
        **memory_fields(timed["resident_before"]),
        "loss_per_sample": losses,
        "parameters": sum(p.numel() for p in model.parameters()),
        "trainable_parameters": sum(p.numel() for p in trainable),
        "vocabulary": len(task.source_dictionary),
    }
    if copy_seconds is not None:
        result["offline_copy_seconds"] = round(copy_seconds, 2)
        result["offline_copy_pairs"] = len(dataset)
    if args.device == "cuda":
        result["cuda_max_memory_allocated_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", required=True, help="English XTREME tsv (XNLI / PAWS-X dev-en.tsv)")
    parser.add_argument("--spm", required=True, help="sentencepiece model of the vocabulary")
    parser.add_argument("--dict", required=True, help="its dict.txt")
    parser.add_argument("--held-out-items", type=int, default=500)
    parser.add_argument("--max-train-examples", type=int, default=None)
    parser.add_argument("--max-seq-length", type=int, default=128)
    add_update_benchmark_arguments(parser, batch_help="sentence pairs per update")
    parser.add_argument("--configurations", default=",".join(CONFIGURATIONS),
                        help="comma-separated subset of " + ", ".join(CONFIGURATIONS))
    parser.add_argument("--worker", choices=sorted(CONFIGURATIONS), help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--num-classes", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        print("RESULT " + json.dumps(run_worker(args.worker, args)), flush=True)
        return
    names = [n for n in args.configurations.split(",") if n]
    unknown = sorted(set(names) - set(CONFIGURATIONS))
    if unknown or "sentence_prediction" not in names:
        raise SystemExit(f"--configurations: unknown {unknown} or no sentence_prediction baseline")
    for path in (args.train, args.spm, args.dict):
        if not os.path.isfile(path):
            raise SystemExit(f"{path}: not found")
    data_dir = tempfile.mkdtemp(prefix="bench_salt_data_")
    num_classes = write_data(args, data_dir)
    results = {}
    load_before = os.getloadavg()
    for name in names:
        results[name] = run_in_worker(__file__, name, ["--data", data_dir, "--num-classes", str(num_classes),
                                                       *(argv if argv is not None else sys.argv[1:])])
        print(f"{name}: {results[name]['seconds_per_update']:.3f} s/update, peak RSS "
              f"{results[name]['peak_resident_mib']} MiB (+{results[name]['peak_growth_mib']} MiB over the model)",
              flush=True)
    baseline = results["sentence_prediction"]
    ratios = {name: {"seconds_per_update_vs_plain": round(r["seconds_per_update"] / baseline["seconds_per_update"], 3),
                     "peak_growth_vs_plain": round(r["peak_growth_mib"] / max(baseline["peak_growth_mib"], 1e-9), 3),
                     "peak_resident_vs_plain": round(r["peak_resident_mib"] / baseline["peak_resident_mib"], 3)}
              for name, r in results.items() if name != "sentence_prediction"}
    for name, ratio in ratios.items():
        print(f"{name} / sentence_prediction: {ratio}")
    report = {
        "benchmark": "one fine-tuning update (forward + backward + Adam step): xsl_salt vs sentence_prediction, "
                     "same model and batches",
        "pass_count_bound": PASS_COUNT_BOUND,
        "train": os.path.abspath(args.train),
        "arch": args.arch,
        "model_args": args.model_args,
        "batch_size_pairs": args.batch_size,
        "max_seq_length": args.max_seq_length,
        "warmup_updates": args.warmup,
        "timed_updates": args.updates,
        "device": args.device,
        "threads": args.threads,
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "contended": os.getloadavg()[0] > 0.5 * (os.cpu_count() or 1) or load_before[0] > 0.5 * (os.cpu_count() or 1),
        "environment": environment(),
        "results": results,
        "ratios": ratios,
    }
    write_report(args.out, report)


if __name__ == "__main__":
    main()
