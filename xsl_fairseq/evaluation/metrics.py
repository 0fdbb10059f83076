"""Scores of zero-shot cross-lingual evaluation (xsl-eval) and their markdown tables.

* Extractive QA: SQuAD v1.1 F1 / exact match (``lang=None``) and the language-specific
  variant of MLQA's official ``mlqa_evaluation_v1.py`` (``lang`` in :data:`MLQA_LANGUAGES`).
* Classification: :func:`accuracy`.
* NER: entity-level F1 with seqeval (:func:`ner_f1`) over every entity type, as XTREME's
  ``evaluate.py`` scores panx; optionally restricted to the entity types that training and
  test data share (:func:`shared_entity_types`, :func:`restrict_to_types`).
* POS: XTREME's ``evaluate.py`` scores udpos with seqeval's F1 over the raw UPOS tags
  (:func:`seqeval_chunk_counts` reproduces it per sentence); :func:`accuracy` per word.
* Sentence retrieval: cosine nearest neighbours (:func:`retrieval_predictions`,
  :func:`retrieval_accuracy`).
* Summaries: :func:`mean_and_std` over seeds, :func:`markdown_table`,
  :func:`markdown_table_multi`.

All scores returned by this module are percentages (0-100), except the per-pair
:func:`squad_f1` and :func:`squad_exact_match`, which are fractions (0-1) as in the
official scripts. Neither torch nor fairseq is imported here.
"""
import logging
import re
import statistics
import string
import sys
import unicodedata
from collections import Counter
from functools import lru_cache
from typing import Dict, FrozenSet, Iterable, List, Mapping, Optional, Sequence, Set, Tuple, Union

import numpy as np

logger = logging.getLogger(__name__)

# ---------------------------------------------------------------------------
# Extractive QA (SQuAD v1.1, MLQA)
# ---------------------------------------------------------------------------

MLQA_LANGUAGES = ("ar", "de", "en", "es", "hi", "vi", "zh")

_SQUAD_PUNCTUATION = frozenset(string.punctuation)
_ENGLISH_ARTICLES = re.compile(r"\b(a|an|the)\b")

# Article patterns of mlqa_evaluation_v1.py; hi and zh have none.
_MLQA_ARTICLES = {
    "en": _ENGLISH_ARTICLES,
    "es": re.compile(r"\b(un|una|unos|unas|el|la|los|las)\b"),
    "vi": re.compile(r"\b(của|là|cái|chiếc|những)\b"),
    "de": re.compile(r"\b(ein|eine|einen|einem|eines|einer|der|die|das|den|dem|des)\b"),
    # The official pattern is '\sال^|ال': its first branch can never match, so every
    # "ال" is replaced, inside words too. Kept as is so that scores stay comparable.
    "ar": re.compile("ال"),
    "hi": None,
    "zh": None,
}
# Characters that mixed segmentation splits off one per token (the official range).
_MLQA_CJK = re.compile("[\u4e00-\u9fa5]")


@lru_cache(maxsize=1)
def _mlqa_punctuation() -> FrozenSet[str]:
    """ASCII punctuation plus every Unicode character of a P* category (built once, lazily)."""
    unicode_punctuation = {chr(code) for code in range(sys.maxunicode)
                           if unicodedata.category(chr(code)).startswith("P")}
    return frozenset(unicode_punctuation | _SQUAD_PUNCTUATION)


@lru_cache(maxsize=None)
def _warn_no_mlqa_rules(lang: str) -> None:
    logger.warning("MLQA has no answer normalisation for %r (it knows %s): scoring %r answers "
                   "with the SQuAD v1.1 rules", lang, ", ".join(MLQA_LANGUAGES), lang)


def _mixed_segmentation(text: str, punctuation: FrozenSet[str]) -> List[str]:
    """Whitespace tokens, except that each CJK character (and punctuation mark) is a token."""
    tokens: List[str] = []
    pending = ""
    for char in text:
        if _MLQA_CJK.match(char) or char in punctuation:
            tokens.extend(pending.split())
            pending = ""
            tokens.append(char)
        else:
            pending += char
    tokens.extend(pending.split())
    return tokens


def squad_normalize_answer(s: str, lang: Optional[str] = None) -> str:
    """Answer text as the official scripts compare it.

    ``lang=None``: SQuAD v1.1 ``evaluate-v1.1.py``: lowercase, drop ASCII punctuation
    (``string.punctuation``), replace the English articles a/an/the by a space, collapse
    whitespace. Use it for SQuAD and XQuAD (XTREME scores XQuAD this way in every language).

    ``lang`` given (one of :data:`MLQA_LANGUAGES`): MLQA ``mlqa_evaluation_v1.py``: the same
    order of steps, but punctuation is ASCII plus all Unicode P* characters (so ``«``,
    ``“``, ``–``, ``。`` go too), the articles are those of the language (es: un una unos
    unas el la los las; de: ein eine einen einem eines einer der die das den dem des;
    vi: của là cái chiếc những; ar: every "ال"; en: a an the; hi, zh: none), and zh is
    segmented with every CJK character as its own token (character-level F1). Note that
    ``lang="en"`` therefore differs from ``lang=None`` on Unicode punctuation; MLQA's
    official English scores use ``"en"``.

    Other languages (XQuAD's el ro ru th tr, ...), which the MLQA script rejects, get the
    SQuAD v1.1 rules, with a warning logged once per language.
    """
    if lang is not None and lang not in _MLQA_ARTICLES:
        _warn_no_mlqa_rules(lang)
        lang = None
    text = s.lower()
    if lang is None:
        text = "".join(char for char in text if char not in _SQUAD_PUNCTUATION)
        return " ".join(_ENGLISH_ARTICLES.sub(" ", text).split())
    punctuation = _mlqa_punctuation()
    text = "".join(char for char in text if char not in punctuation)
    articles = _MLQA_ARTICLES[lang]
    if articles is not None:
        text = articles.sub(" ", text)
    tokens = _mixed_segmentation(text, punctuation) if lang == "zh" else text.split()
    return " ".join(token for token in tokens if token.strip())


def squad_f1(prediction: str, ground_truth: str, lang: Optional[str] = None) -> float:
    """Token-overlap F1 (0-1) of two answers after :func:`squad_normalize_answer`.

    As in SQuAD v1.1, no shared token (including two empty answers) scores 0.
    """
    prediction_tokens = squad_normalize_answer(prediction, lang).split()
    truth_tokens = squad_normalize_answer(ground_truth, lang).split()
    shared = sum((Counter(prediction_tokens) & Counter(truth_tokens)).values())
    if shared == 0:
        return 0.0
    precision = shared / len(prediction_tokens)
    recall = shared / len(truth_tokens)
    return 2 * precision * recall / (precision + recall)


def squad_exact_match(prediction: str, ground_truth: str, lang: Optional[str] = None) -> float:
    """1.0 if both answers are equal after :func:`squad_normalize_answer`, else 0.0."""
    return float(squad_normalize_answer(prediction, lang) == squad_normalize_answer(ground_truth, lang))


def squad_scores(predictions: Mapping[str, str], examples: Sequence, lang: Optional[str] = None
                 ) -> Dict[str, float]:
    """``{"f1", "exact_match"}`` in percent over ``examples`` (:class:`readers.QAExample`).

    Each question scores its best match over its gold answers; the scores are averaged
    over all questions. A question without a prediction scores 0 (logged), and
    predictions for unknown ids are ignored, as in the official scripts.
    """
    if not examples:
        raise ValueError("no questions to score")
    total_f1 = total_exact = 0.0
    unanswered = 0
    for example in examples:
        if not example.answers:
            raise ValueError(f"question {example.qid!r} has no gold answer")
        if example.qid not in predictions:
            unanswered += 1
            continue
        prediction = predictions[example.qid]
        total_exact += max(squad_exact_match(prediction, truth, lang) for truth in example.answers)
        total_f1 += max(squad_f1(prediction, truth, lang) for truth in example.answers)
    if unanswered:
        logger.warning("%d of %d questions have no prediction and score 0", unanswered, len(examples))
    return {"f1": 100.0 * total_f1 / len(examples),
            "exact_match": 100.0 * total_exact / len(examples)}


# ---------------------------------------------------------------------------
# Classification and tagging
# ---------------------------------------------------------------------------

def accuracy(predictions: Sequence, labels: Sequence) -> float:
    """Percentage of positions where ``predictions[i] == labels[i]``."""
    if len(predictions) != len(labels):
        raise ValueError(f"{len(predictions)} predictions for {len(labels)} labels")
    if not labels:
        raise ValueError("no labels to score")
    return 100.0 * sum(p == g for p, g in zip(predictions, labels)) / len(labels)


def _entity_type(tag: str) -> Optional[str]:
    """``PER`` for ``B-PER``/``I-PER``; None for ``O``."""
    return tag.split("-", 1)[1] if "-" in tag else None


def entity_types(tag_sequences: Iterable[Sequence[str]]) -> Set[str]:
    """Entity types named in IOB2 tag sequences."""
    return {_entity_type(tag) for tags in tag_sequences for tag in tags} - {None}


def restrict_to_types(tag_sequences: Iterable[Sequence[str]], keep_types: Iterable[str]
                      ) -> List[List[str]]:
    """Copies of ``tag_sequences`` with tags of entity types outside ``keep_types`` set to O."""
    keep = set(keep_types)
    return [[tag if _entity_type(tag) in keep else "O" for tag in tags] for tags in tag_sequences]


def shared_entity_types(train_tag_sequences: Iterable[Sequence[str]],
                        test_tag_sequences: Iterable[Sequence[str]]) -> Tuple[Set[str], Set[str]]:
    """``(shared, ignored)``: the entity types both data sets use, and those only one uses.

    Example: UNER (PER ORG LOC) against MasakhaNER (PER ORG LOC DATE) gives
    ``({"PER", "ORG", "LOC"}, {"DATE"})``; score with ``ner_f1(..., keep_types=shared)``,
    since a model never trained on DATE cannot find it.
    """
    train, test = entity_types(train_tag_sequences), entity_types(test_tag_sequences)
    return train & test, train ^ test


def ner_f1(gold: List[List[str]], pred: List[List[str]], keep_types: Optional[Set[str]] = None
           ) -> Dict[str, object]:
    """Entity-level scores (seqeval, default conlleval-compatible mode) in percent.

    With ``keep_types``, entities of other types are turned into O in gold and prediction
    alike before scoring. Returns ``{"f1", "precision", "recall", "gold_entities",
    "per_type": {type: {"f1", "precision", "recall", "support"}}}``.
    """
    if len(gold) != len(pred):
        raise ValueError(f"{len(pred)} predicted sentences for {len(gold)} gold sentences")
    for index, (gold_tags, pred_tags) in enumerate(zip(gold, pred)):
        if len(gold_tags) != len(pred_tags):
            raise ValueError(f"sentence {index}: {len(pred_tags)} predicted tags for "
                             f"{len(gold_tags)} gold tags")
    if keep_types is not None:
        gold, pred = restrict_to_types(gold, keep_types), restrict_to_types(pred, keep_types)
    from seqeval.metrics import classification_report, f1_score, precision_score, recall_score

    gold, pred = [list(tags) for tags in gold], [list(tags) for tags in pred]
    per_type = {}
    if entity_types(gold) | entity_types(pred):
        report = classification_report(gold, pred, output_dict=True, zero_division=0)
        per_type = {
            name: {"f1": 100.0 * float(row["f1-score"]), "precision": 100.0 * float(row["precision"]),
                   "recall": 100.0 * float(row["recall"]), "support": int(row["support"])}
            for name, row in report.items() if not name.endswith(" avg")
        }
    return {
        "f1": 100.0 * float(f1_score(gold, pred, zero_division=0)),
        "precision": 100.0 * float(precision_score(gold, pred, zero_division=0)),
        "recall": 100.0 * float(recall_score(gold, pred, zero_division=0)),
        "gold_entities": sum(row["support"] for row in per_type.values()),
        "per_type": per_type,
    }


def seqeval_chunk_counts(gold: List[List[str]], pred: List[List[str]]) -> np.ndarray:
    """Per sentence ``(correct, predicted, gold)`` chunk counts (an N x 3 integer array) as
    seqeval's default mode counts them; ``2 * correct / (predicted + gold)`` summed over all
    sentences is exactly seqeval's micro F1 (:func:`f1_from_counts`).

    Chunks are read the way seqeval reads them, from the sentences concatenated with an
    ``O`` between them, and each is credited to the sentence it starts in. Tags need not be
    IOB2: XTREME scores udpos by passing the UPOS tags themselves (``NOUN`` is read as tag
    ``N`` of type ``OUN``, so a run of equal tags is one chunk), and this reproduces that.
    """
    import warnings

    from seqeval.metrics.sequence_labeling import get_entities

    if len(gold) != len(pred):
        raise ValueError(f"{len(pred)} predicted sentences for {len(gold)} gold sentences")
    sentence_of, starts = [], []
    for index, (gold_tags, pred_tags) in enumerate(zip(gold, pred)):
        if len(gold_tags) != len(pred_tags):
            raise ValueError(f"sentence {index}: {len(pred_tags)} predicted tags for "
                             f"{len(gold_tags)} gold tags")
        starts.append(len(sentence_of))
        sentence_of.extend([index] * (len(gold_tags) + 1))  # + the separating O
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "NOUN seems not to be NE tag"
        gold_chunks = set(get_entities([list(tags) for tags in gold]))
        pred_chunks = set(get_entities([list(tags) for tags in pred]))
    counts = np.zeros((len(gold), 3), dtype=np.int64)
    for column, chunks in ((0, gold_chunks & pred_chunks), (1, pred_chunks), (2, gold_chunks)):
        for _, begin, _ in chunks:
            counts[sentence_of[begin], column] += 1
    return counts


def f1_from_counts(counts: np.ndarray) -> float:
    """Micro F1 in percent from summed ``(correct, predicted, gold)`` counts; 0 when either
    side has no chunk (seqeval's ``zero_division=0``)."""
    correct, predicted, gold = (float(value) for value in np.asarray(counts).reshape(-1, 3).sum(axis=0))
    return 200.0 * correct / (predicted + gold) if predicted and gold else 0.0


def pos_f1(gold: List[List[str]], pred: List[List[str]]) -> float:
    """XTREME's udpos score: seqeval's F1 over the UPOS tag sequences, in percent."""
    return f1_from_counts(seqeval_chunk_counts(gold, pred))


# ---------------------------------------------------------------------------
# Sentence retrieval
# ---------------------------------------------------------------------------

def _as_matrix(embeddings, name: str) -> np.ndarray:
    if hasattr(embeddings, "detach"):  # a torch tensor, possibly on GPU or in bfloat16
        embeddings = embeddings.detach().float().cpu().numpy()
    matrix = np.asarray(embeddings, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty 2-d array, got shape {matrix.shape}")
    return matrix


def _nearest(queries: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Index of the most similar key (dot product) for each query, in memory-bounded blocks."""
    block = max(1, (1 << 24) // keys.shape[0])
    return np.concatenate([np.argmax(queries[start:start + block] @ keys.T, axis=1)
                           for start in range(0, queries.shape[0], block)])


def retrieval_predictions(src_emb, tgt_emb) -> Tuple[np.ndarray, np.ndarray]:
    """``(src->tgt, tgt->src)``: for every row of one side, the index of its cosine nearest
    neighbour on the other side.

    Row i of ``src_emb`` (numpy array, torch tensor or nested list) is the translation of
    row i of ``tgt_emb``. Ties go to the lowest index. XTREME's Tatoeba score
    (``evaluate_retrieval.py``: the non-English side is indexed, English sentences are the
    queries) is the accuracy of the tgt->src predictions when tgt is English.
    """
    src, tgt = _as_matrix(src_emb, "src_emb"), _as_matrix(tgt_emb, "tgt_emb")
    if src.shape != tgt.shape:
        raise ValueError(f"src_emb {src.shape} and tgt_emb {tgt.shape} must have the same shape")
    src = src / np.maximum(np.linalg.norm(src, axis=1, keepdims=True), 1e-12)
    tgt = tgt / np.maximum(np.linalg.norm(tgt, axis=1, keepdims=True), 1e-12)
    return _nearest(src, tgt), _nearest(tgt, src)


def retrieval_accuracy(src_emb, tgt_emb) -> Tuple[float, float]:
    """``(src->tgt, tgt->src)`` accuracy in percent of cosine nearest-neighbour search: a
    query is right when its nearest neighbour on the other side is its own translation
    (:func:`retrieval_predictions`), so a duplicated sentence on the searched side can cost
    a hit."""
    src_to_tgt, tgt_to_src = retrieval_predictions(src_emb, tgt_emb)
    gold = np.arange(src_to_tgt.shape[0])
    return 100.0 * float(np.mean(src_to_tgt == gold)), 100.0 * float(np.mean(tgt_to_src == gold))


# ---------------------------------------------------------------------------
# Summaries and tables
# ---------------------------------------------------------------------------

Cell = Union[float, Tuple[float, float], str]


def mean_and_std(values: Iterable[float]) -> Tuple[float, float]:
    """Mean and sample standard deviation (n-1); the deviation of one value is 0.0."""
    values = [float(value) for value in values]
    if not values:
        raise ValueError("mean_and_std of no values")
    if len(values) == 1:
        return values[0], 0.0
    return statistics.fmean(values), statistics.stdev(values)


def average_column(english: str = "en") -> str:
    """Name of the column that averages the non-English languages."""
    return f"avg (non-{english})"


def non_english_average(results: Mapping[str, float], english: str = "en") -> Optional[float]:
    """Mean over the languages other than ``english``; None when there are none."""
    values = [value for lang, value in results.items()
              if lang != english and lang != average_column(english)]
    return statistics.fmean(values) if values else None


def seed_summary(per_seed_results: Sequence[Mapping[str, float]], english: str = "en"
                 ) -> Dict[str, Tuple[float, float]]:
    """Per language ``(mean, std)`` over seeds, plus the average column as the mean and std of
    each seed's own non-English average (not an average of standard deviations)."""
    if not per_seed_results:
        raise ValueError("no seeds to summarise")
    languages = sorted(set().union(*per_seed_results))
    missing = [lang for lang in languages if any(lang not in run for run in per_seed_results)]
    if missing:
        raise ValueError(f"languages missing from some seeds: {', '.join(missing)}")
    summary = {lang: mean_and_std(run[lang] for run in per_seed_results) for lang in languages}
    averages = [non_english_average(run, english) for run in per_seed_results]
    if all(value is not None for value in averages):
        summary[average_column(english)] = mean_and_std(averages)
    return summary


def _format_cell(value: Optional[Cell], digits: int) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    if isinstance(value, tuple):
        mean, std = value
        return f"{mean:.{digits}f} ± {std:.{digits}f}"
    return f"{value:.{digits}f}"


def _ordered_languages(languages: Iterable[str], english: str) -> List[str]:
    languages = set(languages) - {average_column(english)}
    return ([english] if english in languages else []) + sorted(languages - {english})


def markdown_table_multi(rows: Mapping[str, Mapping[str, Cell]], english: str = "en",
                         digits: int = 1, row_header: str = "") -> str:
    """Markdown table: one row per key of ``rows``, one column per language.

    ``rows`` maps a row label (a metric such as ``"f1"`` / ``"exact_match"``, or a seed
    such as ``"seed 1"`` / ``"mean ± std"``) to ``{language: cell}``, where a cell is a
    number, a ``(mean, std)`` pair (shown ``mean ± std``) or a preformatted string.
    Columns: English first (reported on its own, never averaged), the other languages
    sorted, then ``avg (non-en)``. A row that already holds that key (see
    :func:`seed_summary`) shows it; otherwise it is the mean of the row's non-English
    numbers (for ``(mean, std)`` cells, the mean of the means, shown without a std).
    Missing cells show ``-``.
    """
    avg_name = average_column(english)
    languages = _ordered_languages((lang for row in rows.values() for lang in row), english)
    header = [row_header] + languages + [avg_name]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    for label, row in rows.items():
        average = row.get(avg_name)
        if average is None:
            numbers = [value[0] if isinstance(value, tuple) else value for lang, value in row.items()
                       if lang != english and not isinstance(value, str)]
            average = statistics.fmean(numbers) if numbers else None
        cells = [label] + [_format_cell(row.get(lang), digits) for lang in languages]
        cells.append(_format_cell(average, digits))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def markdown_table(results: Mapping[str, float], english: str = "en", metric_name: str = "score",
                   digits: int = 1) -> str:
    """One-row markdown table of ``{language: score}``, labelled ``metric_name``.

    English comes first in its own column, the other languages follow sorted, and the last
    column ``avg (non-en)`` is the mean over the non-English languages, e.g.::

        | metric | en | de | fr | avg (non-en) |
        |---|---:|---:|---:|---:|
        | accuracy | 85.0 | 75.0 | 70.0 | 72.5 |
    """
    return markdown_table_multi({metric_name: results}, english=english, digits=digits,
                                row_header="metric")
