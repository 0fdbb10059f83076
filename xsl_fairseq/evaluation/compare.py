"""``xsl-eval compare RUN ...``: runs side by side, with paired bootstrap intervals.

Each RUN is the ``results.json`` of one ``xsl-eval`` run (or its directory). One table:
runs as rows, languages as columns plus the average over the non-English languages;
below them, for every run after the first, its difference to the first run with a paired
bootstrap 95% interval, and a PNG chart of the per-language scores beside the table.

The bootstrap (Koehn 2004, "Statistical significance tests for machine translation
evaluation"; the paired percentile form of Efron & Tibshirani) resamples the test items
of a language with replacement, the same items for both runs, and recomputes both scores
from the stored predictions (:func:`~xsl_fairseq.evaluation.predictions.scoring_units`),
so it needs the ``predictions/`` and ``gold/`` folders each run wrote. Seeds are pooled:
a run with several seeds scores every resample as the mean over its seeds, exactly as
``results.json`` reports the mean. The average column resamples every language in the
same replicate. The interval is the 2.5th and 97.5th percentile of the replicate
differences; the resampling seed is fixed (``--bootstrap-seed``), so a comparison is
reproducible. Runs must have scored the same items (same languages, same gold files).
"""
import json
import logging
import os
from typing import Dict, List, Optional, Sequence

import numpy as np

from preprocess import InputError
from preprocess.atomic import atomic_paths, atomic_write

from .metrics import average_column
from .predictions import scoring_units

logger = logging.getLogger(__name__)


class Run:
    """One ``results.json`` and the per-item scoring units of its stored predictions."""

    def __init__(self, path: str, name: Optional[str] = None):
        if os.path.isdir(path):
            path = os.path.join(path, "results.json")
        if not os.path.isfile(path):
            raise InputError(f"{path}: results.json not found")
        try:
            with open(path, encoding="utf-8") as source:
                self.results = json.load(source)
        except json.JSONDecodeError as err:
            raise InputError(f"{path}:{err.lineno}: not valid JSON ({err.msg})") from None
        if "languages" not in self.results or "evaluation" not in self.results:
            raise InputError(f"{path}: not an xsl-eval results.json (no 'evaluation' / 'languages')")
        self.path, self.dir = path, os.path.dirname(os.path.abspath(path))
        self.name = name or os.path.basename(self.dir)
        self.english = self.results.get("english", "en")
        self.config = self.results.get("config", {})

    @property
    def evaluation(self) -> str:
        return self.results["evaluation"]

    def metrics(self) -> List[str]:
        first = next(iter(self.results["languages"].values()))
        return [key for key, value in first.items() if isinstance(value, dict) and "mean" in value]

    def score(self, lang: str, metric: str) -> float:
        return self.results["languages"][lang][metric]["mean"]

    def average(self, metric: str) -> Optional[float]:
        entry = self.results.get("average_non_english", {}).get(metric)
        return entry["mean"] if entry else None

    def units(self, lang: str, metric: str) -> Optional[np.ndarray]:
        """Seeds x items x 2 ``(numerator, denominator)``, or None without stored predictions."""
        index = self.config.get("predictions")
        if not index or lang not in index.get("gold", {}):
            return None
        kind = index["format"]
        if kind == "indices" and metric not in ("accuracy", "en_to_xx"):
            return None  # only the headline direction's predictions are stored
        if kind == "labels" and metric != "accuracy":
            return None
        keep = None
        if metric == "f1_shared_types":
            keep = self.config.get("evaluated_entity_types", {}).get(lang)
        normalisation = self.config.get("normalisation", {}).get(lang)
        gold = os.path.join(self.dir, index["gold"][lang])
        seeds = [os.path.join(self.dir, files[lang]) for files in index["per_seed"].values() if lang in files]
        return np.stack([scoring_units(kind, metric, path, gold, normalisation, keep) for path in seeds])


def _replicate_scores(units: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """Score (percent) of every bootstrap replicate: mean over seeds of each seed's ratio
    of sums over the resampled items. ``units``: seeds x items x 2; ``indices``: B x items."""
    numerators = units[:, :, 0][:, indices].sum(axis=2)     # seeds x B
    denominators = units[:, :, 1][:, indices].sum(axis=2)
    ratios = np.divide(numerators, denominators, out=np.zeros_like(numerators), where=denominators > 0)
    return 100.0 * ratios.mean(axis=0)


def paired_bootstrap(first: Dict[str, np.ndarray], second: Dict[str, np.ndarray], samples: int = 1000,
                     seed: int = 1, english: str = "en") -> Dict[str, dict]:
    """Per language (and the non-English average): ``{"difference", "low", "high"}`` of
    ``second - first`` in points, the interval being the 2.5/97.5 percentiles of
    ``samples`` paired replicates. ``first[lang]`` / ``second[lang]``: seeds x items x 2
    units (:meth:`Run.units`); both runs must have the same items per language."""
    rng = np.random.default_rng(seed)
    out, others = {}, []
    for lang in sorted(first):
        a, b = first[lang], second[lang]
        if a.shape[1] != b.shape[1]:
            raise InputError(f"{lang}: the runs scored different items ({a.shape[1]} vs {b.shape[1]}); "
                             "a paired comparison needs the same test items")
        indices = rng.integers(0, a.shape[1], size=(samples, a.shape[1]))
        replicate = _replicate_scores(b, indices) - _replicate_scores(a, indices)
        everything = np.arange(a.shape[1])[None, :]
        point = float(_replicate_scores(b, everything)[0] - _replicate_scores(a, everything)[0])
        out[lang] = {"difference": point, "low": float(np.percentile(replicate, 2.5)),
                     "high": float(np.percentile(replicate, 97.5)), "replicates": replicate}
        if lang != english:
            others.append(lang)
    if others:
        replicate = np.mean([out[lang]["replicates"] for lang in others], axis=0)
        out[average_column(english)] = {
            "difference": float(np.mean([out[lang]["difference"] for lang in others])),
            "low": float(np.percentile(replicate, 2.5)), "high": float(np.percentile(replicate, 97.5))}
    for entry in out.values():
        entry.pop("replicates", None)
    return out


def compare(paths: Sequence[str], names: Optional[Sequence[str]] = None, metric: Optional[str] = None,
            samples: int = 1000, seed: int = 1) -> dict:
    """Everything the table and chart show, as a JSON-ready dict."""
    if len(paths) < 1:
        raise InputError("compare needs at least one results.json")
    if names and len(names) != len(paths):
        raise InputError(f"--names gives {len(names)} names for {len(paths)} runs")
    runs = [Run(path, names[i] if names else None) for i, path in enumerate(paths)]
    base = runs[0]
    for run in runs[1:]:
        if run.evaluation != base.evaluation:
            raise InputError(f"{run.path}: a {run.evaluation} run cannot be compared with {base.path} "
                             f"({base.evaluation})")
    metric = metric or base.metrics()[0]
    for run in runs:
        if metric not in run.metrics():
            raise InputError(f"{run.path}: no metric {metric!r} (it has {', '.join(run.metrics())})")
    shared = set(base.results["languages"])
    for run in runs[1:]:
        shared &= set(run.results["languages"])
    for run in runs:
        left_out = sorted(set(run.results["languages"]) - shared)
        if left_out:
            logger.warning("%s: languages not in every run, left out: %s", run.path, ", ".join(left_out))
    english = base.english
    languages = sorted(shared, key=lambda lang: (lang != english, lang))
    if not languages:
        raise InputError("the runs share no language")
    others = [lang for lang in languages if lang != english]
    avg = average_column(english)

    def row(run):
        scores = {lang: run.score(lang, metric) for lang in languages}
        if others:
            scores[avg] = float(np.mean([scores[lang] for lang in others]))
        return scores

    table = {"evaluation": base.evaluation, "metric": metric, "languages": languages, "english": english,
             "runs": [{"name": run.name, "results": run.path, "scores": row(run),
                       "seeds": len(next(iter(run.results["languages"].values()))[metric]["per_seed"])}
                      for run in runs],
             "differences": [], "bootstrap": {"samples": samples, "seed": seed, "interval": 95}}
    base_units = {lang: base.units(lang, metric) for lang in languages}
    for run in runs[1:]:
        difference = {lang: run.score(lang, metric) - base.score(lang, metric) for lang in languages}
        if others:
            difference[avg] = float(np.mean([difference[lang] for lang in others]))
        entry = {"name": f"{run.name} - {base.name}", "difference": difference, "interval": None}
        units = {lang: run.units(lang, metric) for lang in languages}
        if all(u is not None for u in units.values()) and all(u is not None for u in base_units.values()):
            for lang in languages:
                gold_a = base.config["predictions"]["gold"][lang]
                gold_b = run.config["predictions"]["gold"][lang]
                if _read(os.path.join(base.dir, gold_a)) != _read(os.path.join(run.dir, gold_b)):
                    raise InputError(f"{lang}: {run.path} and {base.path} were scored on different gold "
                                     "files; a paired comparison needs the same test items")
            entry["interval"] = {lang: {"low": value["low"], "high": value["high"]}
                                 for lang, value in paired_bootstrap(base_units, units, samples, seed,
                                                                     english).items()}
        else:
            logger.warning("%s or %s has no stored predictions for %s: no bootstrap interval",
                           run.path, base.path, metric)
        table["differences"].append(entry)
    return table


def _read(path: str) -> bytes:
    with open(path, "rb") as source:
        return source.read()


def markdown(table: dict, digits: int = 1) -> str:
    languages = table["languages"] + ([average_column(table["english"])] if len(table["languages"]) > 1
                                      and any(lang != table["english"] for lang in table["languages"]) else [])
    header = ["run"] + languages
    lines = [f"{table['evaluation']}: {table['metric']}; differences to the first run with paired bootstrap "
             f"95% intervals ({table['bootstrap']['samples']} resamples, seed {table['bootstrap']['seed']})", "",
             "| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * len(languages)) + "|"]
    for run in table["runs"]:
        seeds = f" ({run['seeds']} seeds)" if run["seeds"] > 1 else ""
        lines.append("| " + " | ".join([run["name"] + seeds] + [f"{run['scores'][lang]:.{digits}f}"
                                                                 for lang in languages]) + " |")
    for entry in table["differences"]:
        cells = []
        for lang in languages:
            cell = f"{entry['difference'][lang]:+.{digits}f}"
            if entry["interval"]:
                low, high = entry["interval"][lang]["low"], entry["interval"][lang]["high"]
                cell += f" [{low:+.{digits}f}, {high:+.{digits}f}]"
            cells.append(cell)
        lines.append("| " + " | ".join([entry["name"]] + cells) + " |")
    return "\n".join(lines)


def chart(table: dict, path: str) -> None:
    """Grouped bars: one group per language (and the average), one bar per run."""
    logging.getLogger("matplotlib").setLevel(logging.WARNING)  # its import and font search log at DEBUG
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = list(table["runs"][0]["scores"])
    width = 0.8 / len(table["runs"])
    figure, axes = plt.subplots(figsize=(min(14.0, max(6.0, 0.3 * len(columns) * len(table["runs"]) + 2)), 4.5))
    positions = np.arange(len(columns))
    for number, run in enumerate(table["runs"]):
        axes.bar(positions + (number - (len(table["runs"]) - 1) / 2) * width,
                 [run["scores"][column] for column in columns], width, label=run["name"])
    scores = [run["scores"][column] for run in table["runs"] for column in columns]
    low = min(scores)
    axes.set_ylim(max(0.0, low - 0.15 * (max(scores) - low) - 1), min(100.0, max(scores) + 1))
    axes.set_xticks(positions, columns, rotation=45, ha="right")
    axes.set_ylabel(table["metric"])
    axes.set_title(f"{table['evaluation']}: {table['metric']} per language")
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def run_compare(args) -> str:
    table = compare(args.runs, args.names, args.metric, args.bootstrap_samples, args.bootstrap_seed)
    out = args.out or os.path.dirname(os.path.abspath(table["runs"][0]["results"]))
    os.makedirs(out, exist_ok=True)
    text = markdown(table)
    with atomic_write(os.path.join(out, "compare.md")) as target:
        target.write(text + "\n")
    with atomic_write(os.path.join(out, "compare.json")) as target:
        json.dump(table, target, indent=2, ensure_ascii=False)
    with atomic_paths(os.path.join(out, "compare.png")) as (staged,):
        chart(table, staged)
    return text + f"\n\ncomparison: {os.path.join(out, 'compare.md')}, {os.path.join(out, 'compare.json')}; " \
                  f"chart: {os.path.join(out, 'compare.png')}"
