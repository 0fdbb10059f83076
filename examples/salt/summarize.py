"""Summary of an examples/salt run: head warm-up accuracy and time, and the comparison table.

    python examples/salt/summarize.py OUT

Reads ``OUT/head_accuracy_{before,after}.log`` (fairseq-validate), ``OUT/warmup_time.txt`` and
``OUT/eval/<task>/<variant>/results.json`` (xsl-eval sentence-pair); writes ``OUT/summary.md``
and prints it. Cells are mean ± sample std over the seeds that ran (one seed: the value).
"""
import json
import pathlib
import re
import statistics
import sys

VARIANT_NAMES = {
    "plain": "plain fine-tuning (sentence_prediction; xsl_token_labeling for pos)",
    "salt": "SALT: code-switching + mixup",
    "cs": "SALT: code-switching only",
    "mixup": "SALT: mixup only",
    "random": "SALT: random substitutes",
    "offline": "SALT: offline code-switching",
}


def warmup_section(out: pathlib.Path):
    lines = ["## MLM-head warm-up (LM head only, --trainable-parameters '^encoder\\.lm_head\\.')", ""]
    for label in ("before", "after"):
        log = out / f"head_accuracy_{label}.log"
        match = None
        if log.is_file():
            match = re.findall(r"valid on 'valid' subset \| loss ([\d.]+) \| mlm_acc ([\d.]+)", log.read_text())
        lines.append(f"- {label}: " + (f"masked-token accuracy {match[-1][1]} %, loss {match[-1][0]} bits"
                                       if match else "not run"))
    timing = out / "warmup_time.txt"
    if timing.is_file():
        lines.append(f"- {timing.read_text().strip()}")
    return lines


def cell(values):
    if not values:
        return ""
    if len(values) == 1:
        return f"{values[0]:.1f}"
    return f"{statistics.mean(values):.1f} ± {statistics.stdev(values):.1f}"


def single_label_files(run_dir: pathlib.Path):
    """``(seed, language, label)`` of every prediction file of a run (one label or tag per line)
    in which the model predicted one label for everything: a classifier that collapsed to one
    class, whose accuracy is that class's share of the items and says nothing about transfer."""
    found = []
    for path in sorted(run_dir.glob("predictions/seed*/*.tsv")):
        labels = {line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()}
        if len(labels) == 1:
            found.append((path.parent.name[len("seed"):], path.stem, labels.pop()))
    return found


def comparison_section(out: pathlib.Path):
    lines = []
    for task_dir in sorted((out / "eval").glob("*")):
        order = list(VARIANT_NAMES)  # plain first, then the SALT variants; unknown names last
        runs = {v.name: json.loads((v / "results.json").read_text(encoding="utf-8"))
                for v in sorted(task_dir.glob("*"), key=lambda v: (order.index(v.name) if v.name in order
                                                                   else len(order), v.name))
                if (v / "results.json").is_file()}
        if not runs:
            continue
        languages = sorted({lang for r in runs.values() for lang in r["languages"]}, key=lambda l: (l != "en", l))
        any_run = next(iter(runs.values()))["config"]
        lines += [f"## {task_dir.name}: zero-shot accuracy (fine-tuned on English; seeds "
                  f"{','.join(any_run['arguments']['seeds'])}, {any_run['train_examples']} training examples, "
                  f"{any_run['finetune']['epochs']} epochs)", "",
                  "| variant | " + " | ".join(languages) + " | avg non-en |",
                  "|---|" + "---:|" * (len(languages) + 1)]
        for variant, result in runs.items():
            cells = [cell(result["languages"][lang]["accuracy"]["per_seed"]) if lang in result["languages"] else ""
                     for lang in languages]
            per_seed_avg = [statistics.mean(result["languages"][lang]["accuracy"]["per_seed"][i]
                                            for lang in result["languages"] if lang != "en")
                            for i in range(len(result["config"]["arguments"]["seeds"]))]
            lines.append(f"| {VARIANT_NAMES.get(variant, variant)} | " + " | ".join(cells)
                         + f" | {cell(per_seed_avg)} |")
        lines.append("")
        for variant in runs:
            collapsed = single_label_files(task_dir / variant)
            if collapsed:
                lines.append(f"- **{VARIANT_NAMES.get(variant, variant)} predicted a single label** in "
                             f"{len(collapsed)} seed x language files (" + ", ".join(
                                 f"seed {seed} {lang}: {label!r}" for seed, lang, label in collapsed[:6])
                             + (", ..." if len(collapsed) > 6 else "") + "): those cells are the label's share")
        lines += [f"- {VARIANT_NAMES.get(v, v)}: {r['config']['wall_time_s']['total']} s, fairseq args "
                  f"`{r['config']['arguments'].get('fairseq_args', '')}`, --salt {r['config']['arguments'].get('salt')}"
                  for v, r in runs.items()]
        lines.append("")
    return lines


def main(argv):
    out = pathlib.Path(argv[0] if argv else "work/salt")
    text = "\n".join(warmup_section(out) + [""] + comparison_section(out)) + "\n"
    (out / "summary.md").write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main(sys.argv[1:])
