"""Seconds per MLM training update of e5-small on CPU: full vs trimmed vocabulary vs
frozen word embeddings (and trimmed + frozen).

    xsl-prep import-encoder --from-e5 --destdir work/e5
    xsl-prep trim-vocab --model-dir work/e5 --destdir work/e5-trim --input TEXT...
    python benchmarks/bench_e5_update.py --full-dir work/e5 --trimmed-dir work/e5-trim \
        --text TEXT... --out work/bench_e5_update.json

Each configuration loads its directory's ``model.pt`` with
``fairseq.checkpoint_utils.load_model_ensemble_and_task`` (``frozen`` passes the
model option ``freeze_embeddings=True``, exactly what ``fairseq-train
--freeze-embeddings`` sets) and runs what one fairseq-train update does on CPU:
forward and backward through the task's ``xsl_masked_lm`` criterion, gradients
divided by the sample size, fairseq's own Adam (the class ``--optimizer adam`` uses
without CUDA; decoupled weight decay 0.01, betas 0.9/0.98, eps 1e-6). Batches are
``--batch-size`` blocks of ``--tokens-per-sample`` tokens of real text encoded with the
directory's own sentencepiece model and dictionary (``<s>`` + 127 tokens), masked
like fairseq's ``masked_lm`` (15% of tokens; 80% ``<mask>``, 10% random, 10% kept).
After ``--warmup`` untimed updates, ``--updates`` updates are timed one by one (wall
time, and the process's CPU time, which other processes on a shared machine disturb
less); the JSON records the load average around the run.
"""
import argparse
import os
import statistics
import sys
import time

import torch

from report import environment, write_report

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)

MASK_PROB, MASK_REPLACE, RANDOM_REPLACE = 0.15, 0.8, 0.1


def token_blocks(directory: str, dictionary, text_files, num_blocks: int, block: int) -> torch.Tensor:
    """``num_blocks`` rows of ``<s>`` + ``block - 1`` tokens of running text."""
    import sentencepiece as spm

    processor = spm.SentencePieceProcessor(model_file=os.path.join(directory, "sentencepiece.bpe.model"))
    stream, needed = [], num_blocks * (block - 1)
    for path in text_files:
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                line = line.strip()
                if not line:
                    continue
                stream += [dictionary.index(p) for p in processor.encode(line, out_type=str)]
                stream.append(dictionary.eos())
                if len(stream) >= needed:
                    break
        if len(stream) >= needed:
            break
    if len(stream) < needed:
        raise SystemExit(f"--text gives {len(stream)} tokens, {needed} needed")
    body = torch.tensor(stream[:needed]).view(num_blocks, block - 1)
    return torch.cat([torch.full((num_blocks, 1), dictionary.bos()), body], dim=1)


def masked_sample(tokens: torch.Tensor, dictionary, generator: torch.Generator) -> dict:
    special = tokens.lt(dictionary.nspecial)
    chosen = (torch.rand(tokens.shape, generator=generator) < MASK_PROB) & ~special
    target = torch.where(chosen, tokens, torch.full_like(tokens, dictionary.pad()))
    roll = torch.rand(tokens.shape, generator=generator)
    source = tokens.clone()
    source[chosen & (roll < MASK_REPLACE)] = dictionary.index("<mask>")
    random_positions = chosen & (roll >= MASK_REPLACE) & (roll < MASK_REPLACE + RANDOM_REPLACE)
    source[random_positions] = torch.randint(
        dictionary.nspecial, len(dictionary) - 1, (int(random_positions.sum()),), generator=generator)
    return {
        "net_input": {"src_tokens": source, "src_lengths": torch.full((tokens.size(0),), tokens.size(1))},
        "target": target,
        "ntokens": int(tokens.numel()),
        "nsentences": int(tokens.size(0)),
    }


def time_updates(directory: str, frozen: bool, args) -> dict:
    from fairseq import checkpoint_utils
    from fairseq.optim.adam import Adam

    import xsl_fairseq  # noqa: F401  (registers xsl_roberta, the task and the criterion)

    overrides = {"freeze_embeddings": True} if frozen else {}
    models, cfg, task = checkpoint_utils.load_model_ensemble_and_task(
        [os.path.join(directory, "model.pt")], arg_overrides=overrides)
    model = models[0]
    model.train()
    criterion = task.build_criterion(cfg.criterion)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = Adam(trainable, lr=1e-5, betas=(0.9, 0.98), eps=1e-6, weight_decay=0.01)
    dictionary = task.source_dictionary
    total = args.warmup + args.updates
    blocks = token_blocks(directory, dictionary, args.text, total * args.batch_size, args.tokens_per_sample)
    generator = torch.Generator().manual_seed(args.seed)
    seconds, cpu_seconds, losses = [], [], []
    for update in range(total):
        sample = masked_sample(blocks[update * args.batch_size:(update + 1) * args.batch_size],
                               dictionary, generator)
        start, cpu_start = time.perf_counter(), time.process_time()
        loss, sample_size, _ = criterion(model, sample)
        (loss / sample_size).backward()  # fairseq multiplies gradients by 1 / sample_size
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        elapsed, cpu_elapsed = time.perf_counter() - start, time.process_time() - cpu_start
        if update >= args.warmup:
            seconds.append(elapsed)
            cpu_seconds.append(cpu_elapsed)
        losses.append(float(loss) / float(sample_size))
    return {
        "directory": os.path.abspath(directory),
        "vocabulary": len(dictionary),
        "parameters": sum(p.numel() for p in model.parameters()),
        "trainable_parameters": sum(p.numel() for p in trainable),
        "seconds_per_update": statistics.mean(seconds),
        "seconds_per_update_each": seconds,
        # CPU time of this process (all threads): the work done, less sensitive than
        # wall time to other processes competing for the cores
        "cpu_seconds_per_update": statistics.mean(cpu_seconds),
        "load_average_after": os.getloadavg()[0],
        "loss_nats_per_masked_token": losses,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full-dir", required=True, help="xsl-prep import-encoder --from-e5 output")
    parser.add_argument("--trimmed-dir", required=True, help="xsl-prep trim-vocab output")
    parser.add_argument("--text", nargs="+", required=True, help="plain text for the batches")
    parser.add_argument("--out", required=True, help="JSON result file")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--tokens-per-sample", type=int, default=128)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--updates", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    configurations = {
        "full": (args.full_dir, False),
        "trimmed": (args.trimmed_dir, False),
        "frozen_embeddings": (args.full_dir, True),
        "trimmed_frozen_embeddings": (args.trimmed_dir, True),  # both savings together
    }
    results = {}
    load_before = os.getloadavg()[0]
    for name, (directory, frozen) in configurations.items():
        results[name] = time_updates(directory, frozen, args)
        print(f"{name}: {results[name]['seconds_per_update']:.2f} s/update, "
              f"{results[name]['cpu_seconds_per_update']:.2f} CPU s/update "
              f"({results[name]['trainable_parameters']} trainable parameters, "
              f"vocabulary {results[name]['vocabulary']})", flush=True)
    report = {
        "benchmark": "e5-small MLM update (forward + backward + Adam step)",
        "batch_size": args.batch_size,
        "tokens_per_sample": args.tokens_per_sample,
        "warmup_updates": args.warmup,
        "timed_updates": args.updates,
        "torch_threads": torch.get_num_threads(),
        **environment(),
        "load_average_before": load_before,
        "results": results,
    }
    write_report(args.out, report)


if __name__ == "__main__":
    main()
