"""Summary of an examples/clism run: mining counts, pretraining losses, MLQA F1 / EM.

    python examples/clism/summarize.py RUN_DIR MINED_DIR

Reads ``MINED_DIR/*.stats.json`` (xsl-prep clism-spans), ``RUN_DIR/clism-bin/clism.json``,
the last ``train_inner`` scalars of ``RUN_DIR/tensorboard/*`` and
``RUN_DIR/eval/*/results.json`` (xsl-eval qa); writes ``RUN_DIR/summary.md`` and prints it.
"""
import json
import pathlib
import sys
from collections import Counter

ROW_NAMES = {"clism": "CLISM+CACR+MLM, [QUE] mode", "mlm": "MLM only (equal updates), standard mode"}


def mining_section(mined: pathlib.Path, run: pathlib.Path):
    lines = ["## Mining (xsl-prep clism-spans)", "",
             "| corpus | pairs read | pairs kept | spans kept | pairs/s |", "|---|---:|---:|---:|---:|"]
    pair_drops, span_drops, seconds, read = Counter(), Counter(), 0.0, 0
    for path in sorted(mined.glob("*.stats.json")):
        stats = json.loads(path.read_text(encoding="utf-8"))
        lines.append(f"| {path.name[:-len('.jsonl.stats.json')]} | {stats['pairs_read']} | {stats['pairs_kept']} "
                     f"| {stats['spans_kept']} | {stats['pairs_per_second']} |")
        pair_drops.update(stats["pair_drops"])
        span_drops.update(stats["span_drops"])
        seconds += sum(stats["seconds"].values())
        read += stats["pairs_read"]
    lines += ["", f"Overall {read / seconds:.1f} pairs/s." if seconds else "",
              f"Pair drops: {dict(pair_drops)}.", f"Span drops: {dict(span_drops)}."]
    binarized = run / "clism-bin" / "clism.json"
    if binarized.is_file():
        meta = json.loads(binarized.read_text(encoding="utf-8"))
        lines.append(f"Binarization drops: {meta['drops']}; splits: {meta['splits']}.")
    return lines


def last_scalars(logdir: pathlib.Path, tags):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(logdir))
    events.Reload()
    available = set(events.Tags()["scalars"])
    return {tag: (events.Scalars(tag)[0].value, events.Scalars(tag)[-1].value) for tag in tags if tag in available}


def pretraining_section(run: pathlib.Path):
    tags = ["clism_loss", "start_acc", "cacr_loss", "cacr_acc", "mlm_loss", "mlm_acc"]
    lines = ["## Continued pretraining (first -> last logged value)", "",
             "| run | " + " | ".join(tags) + " |", "|---|" + "---:|" * len(tags)]
    for logdir in sorted((run / "tensorboard").glob("*/train_inner")):
        values = last_scalars(logdir, tags)
        cells = [f"{values[t][0]:.2f} -> {values[t][1]:.2f}" if t in values else "" for t in tags]
        lines.append(f"| {logdir.parent.name} | " + " | ".join(cells) + " |")
    return lines


def qa_section(run: pathlib.Path):
    lines = ["## MLQA (fine-tuned on English, zero-shot on the others)", "",
             "| setting | model | seeds | en F1 / EM | avg non-English F1 / EM | languages |",
             "|---|---|---:|---:|---:|---|"]
    for path in sorted((run / "eval").glob("*/results.json")):
        report = json.loads(path.read_text(encoding="utf-8"))
        setting, _, name = path.parent.name.partition("-")
        english = report["languages"].get(report["english"], {})
        average = report["average_non_english"]

        def cell(stats):
            if not stats:
                return "-"
            f1, em = stats["f1"], stats["exact_match"]
            if len(f1["per_seed"]) > 1:
                return f"{f1['mean']:.1f} ± {f1['std']:.1f} / {em['mean']:.1f} ± {em['std']:.1f}"
            return f"{f1['mean']:.1f} / {em['mean']:.1f}"

        seeds = len(next(iter(report["languages"].values()))["f1"]["per_seed"])
        others = ",".join(lang for lang in report["languages"] if lang != report["english"])
        lines.append(f"| {setting} | {ROW_NAMES.get(name, name)} | {seeds} | {cell(english)} | {cell(average)} "
                     f"| {others} |")
    return lines


def main(argv):
    run, mined = pathlib.Path(argv[0]), pathlib.Path(argv[1])
    lines = mining_section(mined, run) + [""] + pretraining_section(run) + [""] + qa_section(run)
    text = "\n".join(lines) + "\n"
    (run / "summary.md").write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main(sys.argv[1:])
