"""Summary of an examples/meta_pretraining run: meta schedule vs single-phase multilingual MLM.

    python examples/meta_pretraining/summarize.py RUN_DIR

Reads ``RUN_DIR/logs/{meta,multi}.log`` (fairseq-train JSON logs: the last ``train_inner``
record and the final ``valid_<lang>`` records = held-out MLM loss per language),
``RUN_DIR/eval/<run>/<task>/results.json`` (xsl-eval) and ``RUN_DIR/wall_times*.txt``; writes
``RUN_DIR/summary.md`` and prints it.
"""
import json
import math
import pathlib
import re
import sys

RUNS = {"meta": "meta schedule (English, then multilingual)", "multi": "single-phase multilingual"}


def fairseq_records(log: pathlib.Path, tag: str):
    pattern = re.compile(rf"\| {re.escape(tag)} \| (\{{.*\}})")
    return [json.loads(m.group(1)) for m in pattern.finditer(log.read_text(encoding="utf-8"))]


def heldout_section(run: pathlib.Path):
    lines, languages = [], None
    for name, label in RUNS.items():
        log = run / "logs" / f"{name}.log"
        if not log.is_file():
            continue
        text = log.read_text(encoding="utf-8")
        if languages is None:
            languages = sorted(set(re.findall(r"\| valid_([a-z]+) \|", text)), key=lambda l: (l != "en", l))
            lines += ["## Held-out MLM perplexity per language (final checkpoint, fixed validation masks)", "",
                      "| run | " + " | ".join(languages) + " |", "|---|" + "---:|" * len(languages)]
        cells = []
        for lang in languages:
            records = fairseq_records(log, f"valid_{lang}")
            cells.append(f"{float(records[-1][f'valid_{lang}_ppl']):.1f}" if records else "-")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines + [""] if lines else []


def training_section(run: pathlib.Path):
    lines = ["## Pretraining", "", "| run | updates | first loss | last loss (bits) | last phase |",
             "|---|---:|---:|---:|---:|"]
    for name, label in RUNS.items():
        log = run / "logs" / f"{name}.log"
        if not log.is_file():
            continue
        records = fairseq_records(log, "train_inner")
        if records:
            first, last = records[0], records[-1]
            lines.append(f"| {label} | {last['num_updates']} | {first['loss']} | {last['loss']} | "
                         f"{last.get('meta_phase', '-')} |")
    return lines + [""]


def eval_section(run: pathlib.Path, task: str, title: str):
    results = {}
    for name in RUNS:
        path = run / "eval" / name / task / "results.json"
        if path.is_file():
            results[name] = json.loads(path.read_text(encoding="utf-8"))
    if not results:
        return []
    some = next(iter(results.values()))
    english = some["english"]
    languages = list(some["languages"])
    metric = next(k for k in some["languages"][languages[0]] if k != "examples")
    header = languages + ["avg non-en"]
    lines = [f"## {title} ({metric}, %)", "", "| run | " + " | ".join(header) + " |",
             "|---|" + "---:|" * len(header)]
    for name, result in results.items():
        def fmt(stats):
            if stats is None:
                return "-"
            value = stats["mean"]  # xsl-eval reports percentages
            std = stats.get("std")
            return f"{value:.1f}" if not std or math.isnan(std) else f"{value:.1f} ± {std:.1f}"

        cells = [fmt(result["languages"].get(lang, {}).get(metric)) for lang in languages]
        cells.append(fmt(result.get("average_non_english", {}).get(metric)))
        lines.append(f"| {RUNS[name]} | " + " | ".join(cells) + " |")
    examples = {lang: entry.get("examples") for lang, entry in some["languages"].items()}
    return lines + ["", f"English = `{english}`; evaluated examples per language: {examples}.", ""]


def main(run_dir: str) -> None:
    run = pathlib.Path(run_dir)
    lines = [f"# Meta-pretraining recipe: {run}", ""]
    lines += training_section(run)
    lines += heldout_section(run)
    lines += eval_section(run, "pos", "Zero-shot POS, UD test (fine-tuned on English EWT)")
    lines += eval_section(run, "flores", "FLORES-101 devtest retrieval, xx<->en mean of both directions")
    lines += eval_section(run, "xnli", "Zero-shot XNLI dev (items 1-500 held out)")
    times = sorted(run.glob("wall_times*.txt"))
    if times:
        lines += ["## Wall times (seconds; the load average at the end of each stage)", "", "```"]
        lines += [t.read_text(encoding="utf-8").strip() for t in times] + ["```"]
    text = "\n".join(lines) + "\n"
    (run / "summary.md").write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main(sys.argv[1])
