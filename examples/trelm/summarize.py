"""Summary of an examples/trelm run: stage updates and wall times, the trelm-vocab criterion per epoch,
German held-out MLM perplexity and German POS accuracy of the TreLM transfer and the from-scratch model.

    python examples/trelm/summarize.py RUN_DIR

Reads ``RUN_DIR/results/stages.tsv`` (written by run.sh), ``RUN_DIR/vocab/trelm_vocab.json``,
``RUN_DIR/results/ppl_*.log`` (fairseq-validate) and ``RUN_DIR/results/pos_*/results.json`` (xsl-eval pos);
writes ``RUN_DIR/results/summary.md`` and ``summary.json`` and prints the markdown.
"""
import csv
import json
import pathlib
import re
import sys

MODELS = {"language": "TreLM transfer (English model, stages 0-4)", "scratch": "from scratch (same updates)"}


def read_stages(results: pathlib.Path):
    path = results / "stages.tsv"
    if not path.is_file():
        return []
    with open(path, encoding="utf-8") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def read_perplexity(log: pathlib.Path):
    if not log.is_file():
        return None
    match = re.findall(r"valid on 'train' subset \| loss ([\d.]+) .*?\| ppl ([\d.]+)", log.read_text(encoding="utf-8"))
    if not match:
        return None
    loss, ppl = match[-1]
    return {"loss_bits": float(loss), "ppl": float(ppl)}


def read_pos(path: pathlib.Path):
    if not path.is_file():
        return None
    report = json.loads(path.read_text(encoding="utf-8"))
    summary = report.get("summary", report)
    entry = summary.get("languages", {}).get("de", {})
    accuracy = entry.get("accuracy")
    return None if accuracy is None else {"accuracy": accuracy["mean"], "examples": entry.get("examples")}


def main(run_dir: str) -> str:
    run = pathlib.Path(run_dir)
    results = run / "results"
    stages = read_stages(results)
    vocab_path = run / "vocab" / "trelm_vocab.json"
    vocab = json.loads(vocab_path.read_text(encoding="utf-8")) if vocab_path.is_file() else None
    models = {name: {"label": label, "perplexity": read_perplexity(results / f"ppl_{name}.log"),
                     "pos": read_pos(results / f"pos_{name}" / "results.json")} for name, label in MODELS.items()}
    lines = ["# TreLM recipe results", "", "## Stages", "", "| stage | updates | wall time (s) |", "|---|---:|---:|"]
    lines += [f"| {row['stage']} | {row['updates']} | {row['seconds']} |" for row in stages]
    if vocab:
        lines += ["", "## trelm-vocab: selection criterion (mean cosine, CSLS k=10, S2T)", "",
                  "| step | criterion | distinct target words |", "|---|---:|---:|"]
        for row in vocab["history"]:
            step = f"adversarial epoch {row['epoch']}" if row["stage"] == "adversarial" \
                else f"refinement {row['iteration']}" + ("" if row["kept"] else " (not kept)")
            lines.append(f"| {step} | {row['criterion']} | {row.get('distinct_targets', '')} |")
        lines += ["", f"Vocabulary {vocab['vocabulary']} pieces, {vocab['pieces_with_fasttext_vector']} with a fastText "
                      f"vector; best criterion {vocab['best_criterion']}; seconds {vocab['seconds']}."]
    lines += ["", "## German", "", "| model | held-out MLM loss (bits) | perplexity | POS accuracy (GSD test) |",
              "|---|---:|---:|---:|"]
    for model in models.values():
        ppl, pos = model["perplexity"], model["pos"]
        lines.append(f"| {model['label']} | {ppl['loss_bits'] if ppl else '-'} | {ppl['ppl'] if ppl else '-'} | "
                     f"{round(pos['accuracy'], 2) if pos else '-'} |")
    text = "\n".join(lines) + "\n"
    results.mkdir(parents=True, exist_ok=True)
    (results / "summary.md").write_text(text, encoding="utf-8")
    (results / "summary.json").write_text(json.dumps({"stages": stages, "models": models,
                                                      "vocab_history": vocab["history"] if vocab else None},
                                                     indent=2), encoding="utf-8")
    print(text)
    return text


if __name__ == "__main__":
    main(sys.argv[1])
