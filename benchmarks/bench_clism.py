"""Words per second and peak memory of an ``xsl_clism`` update against fairseq's
``masked_lm`` on the same model and the same sentence pairs (not a test).

    python benchmarks/bench_clism.py --data data-bin/clism --arch xsl_roberta_tiny --out bench_clism.json
    python benchmarks/bench_clism.py --data work/clism-bin --checkpoint work/e5-trim/model.pt \
        --freeze-embeddings --batch-size 16 --out work/bench_clism.json

What is compared, per update (forward, backward, Adam step):

* ``masked_lm``: fairseq's own ``masked_lm`` criterion on ``<s> s </s> t </s>`` (the
  unmasked pair, i.e. TLM input), BERT masking of 15% of its tokens (80/10/10);
* ``xsl_clism``: the ``xsl_clism`` criterion with default weights on the ``xsl_clism``
  task's batch of the *same* pairs: X = ``<s> ŝ </s> t </s>`` (entities as ``[QUE]``,
  same MLM masking rule) plus the extra pass over ``<s> s </s>`` for CACR.

Both use one model: built from ``--arch`` (random) or loaded from ``--checkpoint``, then
copied, so both start from the same weights. "Words" are the tokens of
``<s> s </s> t </s>`` for both, so the words/s ratio is the inverse time ratio. The batch is
``--batch-size`` pairs of median length that are neighbours in the task's length order
(how fairseq batches), so padding is small for both objectives. The
**pass-count bound** is the token work ratio (|X| + |source pass|) / |pair|, about
1.5 for pairs of similar length: CLISM cannot be cheaper than running the encoder over
that many tokens. The target is a time ratio within 10% of it.

Timing alternates the two objectives update by update (``--updates`` each, after
``--warmup``), so that load from other processes on a shared machine hits both alike.
Memory is measured in two fresh subprocesses, one per objective: the tensors autograd
saves for the backward pass of one forward (activations, parameters excluded: the
exact, noise-free part that differs between objectives), and over ``--memory-updates``
updates the growth of the peak resident set above the resident set before them (the
peak is reset through ``/proc/self/clear_refs``, Linux) or, on GPU,
``torch.cuda.max_memory_allocated``.
"""
import argparse
import copy
import json
import os
import resource
import statistics
import subprocess
import sys
import time

import numpy as np
import torch

from report import bert_masked_batch, environment, proc_status_mib, reset_peak_resident, write_report

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)

OBJECTIVES = ("masked_lm", "xsl_clism")


def build(args):
    """Task, model and the two fixed batches (same pairs) for ``args``."""
    from argparse import Namespace

    from fairseq import checkpoint_utils
    from fairseq.criterions.masked_lm import MaskedLmConfig, MaskedLmLoss

    import xsl_fairseq  # noqa: F401
    from xsl_fairseq.criterions.xsl_clism import XslClismCriterion, XslClismCriterionConfig
    from xsl_fairseq.tasks.xsl_clism import XslClismConfig, XslClismTask

    task = XslClismTask.setup_task(XslClismConfig(data=args.data, seed=args.seed, max_source_tokens=args.max_source_tokens,
                                                  max_target_tokens=args.max_target_tokens))
    task.load_dataset(args.split)
    dataset = task.dataset(args.split)
    if args.checkpoint:
        overrides = {"freeze_embeddings": True} if args.freeze_embeddings else {}
        state = checkpoint_utils.load_checkpoint_to_cpu(args.checkpoint, arg_overrides=overrides)
        model = task.build_model(state["cfg"]["model"])
        model.load_state_dict(state["model"], strict=False, model_cfg=state["cfg"]["model"])
    else:
        model = task.build_model(Namespace(arch=args.arch, freeze_embeddings=args.freeze_embeddings))
    # the same pairs for both objectives: --batch-size pairs of median length, neighbours in
    # the task's length order (as fairseq batches them, so padding is small for both)
    order = dataset.ordered_indices()
    first = max(0, len(order) // 2 - args.batch_size // 2)
    indices = [int(i) for i in order[first:first + args.batch_size]]
    clism_batch = dataset.collater([dataset[i] for i in indices])
    mlm_batch = pair_mlm_batch(dataset, indices, task.dictionary, args.seed)
    criteria = {
        "masked_lm": MaskedLmLoss(MaskedLmConfig(tpu=False), task),
        "xsl_clism": XslClismCriterion(XslClismCriterionConfig(source_pass_batching=args.source_pass_batching), task),
    }
    batches = {"masked_lm": mlm_batch, "xsl_clism": clism_batch}
    return task, model, criteria, batches


def pair_mlm_batch(dataset, indices, dictionary, seed):
    """``<s> s </s> t </s>`` of the pairs with fairseq-style 15% / 80-10-10 masking."""
    rows = [[dictionary.bos(), *dataset.src[int(dataset.pair_ids[index])].tolist(), dictionary.eos(),
             *dataset.tgt[int(dataset.pair_ids[index])].tolist(), dictionary.eos()] for index in indices]
    return bert_masked_batch(rows, dictionary, np.random.RandomState(seed))


def to_device(batch, device):
    from fairseq import utils

    return utils.apply_to_sample(lambda t: t.to(device), batch)


class Runner:
    """One objective's model copy, optimizer and fixed batch."""

    def __init__(self, model, criterion, batch, device):
        self.model = model.to(device).train()
        self.criterion = criterion
        self.batch = to_device(batch, device)
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.Adam(params, lr=1e-5, betas=(0.9, 0.98), eps=1e-6)

    def update(self) -> float:
        loss, sample_size, _ = self.criterion(self.model, self.batch)
        (loss / sample_size).backward()  # fairseq divides gradients by the sample size
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return float(loss.detach()) / float(sample_size)


def pair_words(batch) -> int:
    """Tokens of ``<s> s </s> t </s>`` in the masked_lm batch (= the pairs' words)."""
    return int(batch["ntokens"])


def saved_activation_mb(runner) -> float:
    """MB of non-parameter tensors autograd keeps for the backward pass of one forward."""
    parameters = {p.untyped_storage().data_ptr() for p in runner.model.parameters()}
    storages = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in parameters:
            storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        loss, sample_size, _ = runner.criterion(runner.model, runner.batch)
    (loss / sample_size).backward()
    runner.optimizer.zero_grad(set_to_none=True)
    return sum(storages.values()) / 2 ** 20


def memory_worker(args) -> dict:
    """Runs in a fresh process: memory of ``args.objective`` alone."""
    device = torch.device("cuda" if torch.cuda.is_available() and not args.cpu else "cpu")
    _, model, criteria, batches = build(args)
    runner = Runner(model, criteria[args.objective], batches[args.objective], device)
    result = {"saved_for_backward_mb": round(saved_activation_mb(runner), 1)}
    runner.update()  # creates the Adam state, which both objectives hold alike
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    resident = proc_status_mib("VmRSS")
    reset = reset_peak_resident()
    for _ in range(args.memory_updates):
        runner.update()
    if reset and resident is not None:
        result["rss_before_updates_mb"] = round(resident, 1)
        result["update_peak_rss_growth_mb"] = round(proc_status_mib("VmHWM") - resident, 1)
    result["process_peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    if device.type == "cuda":
        result["cuda_max_allocated_mb"] = round(torch.cuda.max_memory_allocated() / 2 ** 20, 1)
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="directory written by xsl-prep clism-binarize")
    parser.add_argument("--split", default="train")
    parser.add_argument("--arch", default="xsl_roberta_tiny", help="random model of this arch (no --checkpoint)")
    parser.add_argument("--checkpoint", default=None, help="start weights (e.g. xsl-prep import-encoder's model.pt)")
    parser.add_argument("--freeze-embeddings", action="store_true")
    parser.add_argument("--batch-size", type=int, default=32, help="pairs per update")
    parser.add_argument("--max-source-tokens", type=int, default=128, help="the task's length caps")
    parser.add_argument("--max-target-tokens", type=int, default=128)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--updates", type=int, default=10, help="timed updates per objective")
    parser.add_argument("--memory-updates", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--cpu", action="store_true", help="stay on CPU even if CUDA is available")
    parser.add_argument("--source-pass-batching", default="auto", choices=["auto", "separate", "joint"],
                        help="the criterion's option: the unmasked source in its own encoder call or stacked with X")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", required=True, help="JSON result file")
    parser.add_argument("--memory-worker", dest="objective", choices=OBJECTIVES, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    if args.objective:  # subprocess mode
        with open(args.out, "w", encoding="utf-8") as out:
            json.dump(memory_worker(args), out)
        return

    device = torch.device("cuda" if torch.cuda.is_available() and not args.cpu else "cpu")
    task, model, criteria, batches = build(args)
    runners = {name: Runner(copy.deepcopy(model), criteria[name], batches[name], device) for name in OBJECTIVES}
    seconds = {name: [] for name in OBJECTIVES}
    losses = {name: [] for name in OBJECTIVES}
    for step in range(args.warmup + args.updates):
        for name in OBJECTIVES:
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            losses[name].append(runners[name].update())
            if device.type == "cuda":
                torch.cuda.synchronize()
            if step >= args.warmup:
                seconds[name].append(time.perf_counter() - start)

    words = pair_words(batches["masked_lm"])
    x_tokens = int(batches["xsl_clism"]["net_input"]["src_lengths"].sum())
    source_tokens = int(batches["xsl_clism"]["source_net_input"]["src_lengths"].sum())
    bound = (x_tokens + source_tokens) / words
    padded = {name: int(batch["net_input"]["src_tokens"].numel()) for name, batch in batches.items()}
    padded_bound = (padded["xsl_clism"] + batches["xsl_clism"]["source_net_input"]["src_tokens"].numel()) \
        / padded["masked_lm"]
    results = {}
    for name in OBJECTIVES:
        median = statistics.median(seconds[name])
        results[name] = {"seconds_per_update_median": median, "seconds_per_update": seconds[name],
                         "words_per_second": words / median, "loss_per_update": losses[name]}
    for name in OBJECTIVES:
        path = f"{args.out}.{name}.memory.json"
        command = [sys.executable, os.path.abspath(__file__), *(argv if argv is not None else sys.argv[1:]),
                   "--memory-worker", name, "--out", path]
        subprocess.run(command, check=True)
        with open(path, encoding="utf-8") as handle:
            results[name]["memory"] = json.load(handle)
        os.remove(path)
    time_ratio = results["xsl_clism"]["seconds_per_update_median"] / results["masked_lm"]["seconds_per_update_median"]
    report = {
        "benchmark": "xsl_clism vs fairseq masked_lm: one update (forward + backward + Adam) on the same pairs",
        "data": os.path.abspath(args.data),
        "model": args.checkpoint or args.arch,
        "parameters": sum(p.numel() for p in model.parameters()),
        "freeze_embeddings": args.freeze_embeddings,
        "source_pass_batching": args.source_pass_batching,
        "pairs_per_update": batches["masked_lm"]["nsentences"],
        "words_per_update": words,
        "x_tokens_per_update": x_tokens,
        "source_pass_tokens_per_update": source_tokens,
        "pass_count_bound": round(bound, 3),
        "pass_count_bound_padded_tokens": round(padded_bound, 3),
        "time_ratio_clism_over_mlm": round(time_ratio, 3),
        "words_per_second_ratio_clism_over_mlm": round(1 / time_ratio, 3),
        "ratio_over_bound": round(time_ratio / bound, 3),
        "within_10pct_of_bound": time_ratio <= 1.1 * bound,
        "warmup_updates": args.warmup,
        "timed_updates_each": args.updates,
        "device": str(device),
        "torch_threads": torch.get_num_threads(),
        **environment(),
        "results": results,
    }
    write_report(args.out, report)
    print(json.dumps({k: report[k] for k in ("words_per_update", "pass_count_bound", "time_ratio_clism_over_mlm",
                                             "ratio_over_bound", "within_10pct_of_bound")}))
    for name in OBJECTIVES:
        memory = results[name]["memory"]
        print(f"{name}: {results[name]['words_per_second']:.0f} words/s, {memory['saved_for_backward_mb']} MB "
              f"saved for backward, update peak RSS growth {memory.get('update_peak_rss_growth_mb')} MB")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
