"""Predictions written beside ``results.json``, and the per-item scores read back from them.

Layout under ``--out`` (paths are recorded in ``results.json["predictions"]``)::

    predictions/seed{S}/{lang}.{ext}   what the model predicted, per seed
    gold/{lang}.{ext}                  the gold answers in the same format

Formats follow what XTREME's ``evaluate.py`` reads, so its official scripts can re-score a run:

* ``labels`` (sentence pairs): one label per line (``.tsv``).
* ``tags`` (NER, POS): one tag per line, a blank line after each sentence (``.tsv``).
* ``indices`` (retrieval): one line per English query, the 0-based index of the retrieved
  sentence of the other language (XTREME's ``test_{lang}_predictions.txt``; ``.txt``).
* ``squad`` (QA): ``{question id: answer text}`` as the SQuAD / MLQA scripts read it
  (``.json``); the gold file is ``{question id: [answers]}``.

:func:`scoring_units` turns a prediction file and its gold file into per-item
``(numerator, denominator)`` pairs whose ratio of sums is the reported score: accuracy
(``correct, 1``), QA F1 / EM (``score, 1`` per question) and seqeval F1 (``2 * correct,
predicted + gold`` chunks per sentence). ``xsl-eval compare`` resamples these items.
"""
import json
import os
from typing import Dict, Optional, Sequence

import numpy as np

from preprocess import InputError
from preprocess.atomic import atomic_write

from .metrics import restrict_to_types, seqeval_chunk_counts, squad_exact_match, squad_f1

EXTENSIONS = {"labels": "tsv", "tags": "tsv", "indices": "txt", "squad": "json"}


def prediction_path(out_dir: str, seed, lang: str, kind: str) -> str:
    return os.path.join(out_dir, "predictions", f"seed{seed}", f"{lang}.{EXTENSIONS[kind]}")


def gold_path(out_dir: str, lang: str, kind: str) -> str:
    return os.path.join(out_dir, "gold", f"{lang}.{EXTENSIONS[kind]}")


def write_items(path: str, kind: str, items) -> None:
    """Write ``items`` (labels, tag lists, indices, or a dict for ``squad``) in ``kind``'s format."""
    with atomic_write(path) as out:
        if kind == "squad":
            json.dump(items, out, ensure_ascii=False, indent=0)
        elif kind == "tags":
            for tags in items:
                out.writelines(f"{tag}\n" for tag in tags)
                out.write("\n")
        else:
            out.writelines(f"{item}\n" for item in items)


def read_items(path: str, kind: str):
    if not os.path.isfile(path):
        raise InputError(f"{path}: prediction file not found")
    with open(path, encoding="utf-8") as source:
        if kind == "squad":
            try:
                return json.load(source)
            except json.JSONDecodeError as err:
                raise InputError(f"{path}:{err.lineno}: not valid JSON ({err.msg})") from None
        lines = source.read().split("\n")
    if kind == "tags":
        sentences, current = [], []
        for line in lines[:-1] if lines and lines[-1] == "" else lines:
            if line.strip():
                current.append(line.strip())
            else:
                sentences.append(current)
                current = []
        if current:
            sentences.append(current)
        return sentences
    items = [line.strip() for line in (lines[:-1] if lines and lines[-1] == "" else lines)]
    if kind == "indices":
        for number, item in enumerate(items, start=1):
            if not item.lstrip("-").isdigit():
                raise InputError(f"{path}:{number}: expected a sentence index, got {item!r}")
        return [int(item) for item in items]
    return items


def scoring_units(kind: str, metric: str, predicted_path: str, gold_file: str,
                  normalisation: Optional[str] = None, keep_types: Optional[Sequence[str]] = None
                  ) -> np.ndarray:
    """Per item ``(numerator, denominator)`` (N x 2 float array): ``100 * sum(num) / sum(den)``
    is ``metric`` of the prediction file against the gold file."""
    predicted, gold = read_items(predicted_path, kind), read_items(gold_file, kind)
    if kind == "squad":
        if metric not in ("f1", "exact_match"):
            raise InputError(f"{predicted_path}: QA predictions score f1 or exact_match, not {metric!r}")
        score = squad_f1 if metric == "f1" else squad_exact_match
        return np.array([(max(score(predicted.get(qid, ""), answer, normalisation) for answer in answers), 1.0)
                         for qid, answers in gold.items()], dtype=np.float64).reshape(-1, 2)
    if len(predicted) != len(gold):
        raise InputError(f"{predicted_path}: {len(predicted)} items but {gold_file} has {len(gold)}")
    if kind == "tags" and metric != "accuracy":
        if keep_types is not None:  # the project's NER figure: only the shared entity types
            gold, predicted = restrict_to_types(gold, keep_types), restrict_to_types(predicted, keep_types)
        counts = seqeval_chunk_counts(gold, predicted).astype(np.float64)
        return np.stack([2 * counts[:, 0], counts[:, 1] + counts[:, 2]], axis=1)
    if kind == "tags":  # per-word accuracy
        pairs = [(p == g) for p_tags, g_tags in zip(predicted, gold) for p, g in zip(p_tags, g_tags)]
        return np.array([(float(hit), 1.0) for hit in pairs], dtype=np.float64).reshape(-1, 2)
    return np.array([(float(str(p) == str(g)), 1.0) for p, g in zip(predicted, gold)],
                    dtype=np.float64).reshape(-1, 2)


class PredictionWriter:
    """Writes each seed's predictions and the gold file of each language under ``out_dir``
    and keeps the index that goes into ``results.json``."""

    def __init__(self, out_dir: str, kind: str):
        self.out_dir, self.kind = out_dir, kind
        self.index: Dict[str, object] = {"format": kind, "gold": {}, "per_seed": {}}

    def gold(self, lang: str, items) -> None:
        path = gold_path(self.out_dir, lang, self.kind)
        write_items(path, self.kind, items)
        self.index["gold"][lang] = os.path.relpath(path, self.out_dir)

    def predictions(self, seed, lang: str, items) -> None:
        path = prediction_path(self.out_dir, seed, lang, self.kind)
        write_items(path, self.kind, items)
        self.index["per_seed"].setdefault(str(seed), {})[lang] = os.path.relpath(path, self.out_dir)
