"""Results of one ``xsl-eval`` run: markdown table, JSON with every number, TensorBoard scalars."""
import json
import os
from typing import Dict, List

from preprocess.atomic import atomic_write

from .metrics import average_column, markdown_table_multi, mean_and_std


def summarise(per_seed: List[Dict[str, Dict[str, float]]], metrics: List[str], english: str) -> dict:
    """Per language and metric: the value of every seed, mean and sample std; plus the
    average over non-English languages (computed per seed, then summarised)."""
    languages = sorted(per_seed[0], key=lambda lang: (lang != english, lang))
    summary = {"languages": {}, "average_non_english": {}, "english": english}
    for lang in languages:
        entry = {"examples": per_seed[0][lang].get("examples")}
        for metric in metrics:
            values = [run[lang][metric] for run in per_seed]
            mean, std = mean_and_std(values)
            entry[metric] = {"per_seed": values, "mean": mean, "std": std}
        summary["languages"][lang] = entry
    others = [lang for lang in languages if lang != english]
    for metric in metrics:
        if not others:
            continue
        per_seed_avg = [sum(run[lang][metric] for lang in others) / len(others) for run in per_seed]
        mean, std = mean_and_std(per_seed_avg)
        summary["average_non_english"][metric] = {"per_seed": per_seed_avg, "mean": mean, "std": std}
    return summary


def markdown(summary: dict, metrics: List[str], num_seeds: int) -> str:
    """One row per metric; with several seeds each cell is ``mean ± std``."""

    def cell(stats):
        return (stats["mean"], stats["std"]) if num_seeds > 1 else stats["mean"]

    rows = {}
    for metric in metrics:
        row = {lang: cell(entry[metric]) for lang, entry in summary["languages"].items()}
        if metric in summary["average_non_english"]:
            row[average_column(summary["english"])] = cell(summary["average_non_english"][metric])
        rows[metric] = row
    return markdown_table_multi(rows, english=summary["english"], row_header="metric")


def write_report(out_dir: str, name: str, summary: dict, metrics: List[str], config: dict,
                 num_seeds: int) -> str:
    os.makedirs(out_dir, exist_ok=True)
    table = markdown(summary, metrics, num_seeds)
    definitions = config.get("metric_definitions") or {}
    if definitions:
        table += "\n\n" + "\n".join(f"- `{metric}`: {definitions[metric]}" for metric in metrics
                                     if metric in definitions)
    title = f"## {name}: zero-shot {', '.join(metrics)} ({num_seeds} seed{'s' if num_seeds > 1 else ''})\n\n"
    with atomic_write(os.path.join(out_dir, "results.md")) as out:
        out.write(title + table + "\n")
    _write_tensorboard(os.path.join(out_dir, "tensorboard", "eval"), name, summary, metrics)
    # results.json last, complete or absent: it is what marks a finished evaluation (recipes skip on it)
    with atomic_write(os.path.join(out_dir, "results.json")) as out:
        json.dump({"evaluation": name, "config": config, **summary}, out, indent=2, ensure_ascii=False)
    return title + table


def _write_tensorboard(logdir: str, name: str, summary: dict, metrics: List[str]) -> None:
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(logdir)
    for metric in metrics:
        for lang, entry in summary["languages"].items():
            for seed_index, value in enumerate(entry[metric]["per_seed"]):
                writer.add_scalar(f"{name}/{metric}/{lang}", value, seed_index)
        if metric in summary["average_non_english"]:
            for seed_index, value in enumerate(summary["average_non_english"][metric]["per_seed"]):
                writer.add_scalar(f"{name}/{metric}/avg_non_english", value, seed_index)
    writer.close()
