"""``xsl-prep clism-binarize``: mined span pairs (JSON lines) -> what ``--task xsl_clism`` reads.

Input: the JSON-lines format written by ``xsl-prep clism-spans`` (see
:mod:`preprocess.clism_spans`), one or more files (e.g. one per language pair).
Both sides are encoded with the model's sentencepiece model and dictionary; character
spans become sub-token spans:

* the **source** span is the pieces covering the entity, plus standalone whitespace
  pieces (``▁``) right before it, so that its ``[QUE]`` replaces the word with its
  word-start marker exactly as if ``[QUE]`` had been in the text before sub-word
  tokenisation (the recommended reading of the paper);
* the **answer** is the first piece through the last piece covering the aligned words.

A span whose first or last piece reaches past the span into a neighbouring word
(``"Merkels"`` as ``▁Merkel|s`` is fine; a piece ``"(Mer"`` is not) is dropped and
counted as ``subword_boundary``: ``[QUE]`` could not replace it, nor could a pointer
mark it exactly (the paper's "span boundaries must fall on word boundaries"). With
``--widen-answers`` an answer whose boundary piece reaches outside is kept as the
covering pieces instead (counted as ``answers_widened``): XLM-R's vocabulary merges
Chinese characters and number-comma runs ("2015,") into pieces that aligned word hulls
often cut, so strict boundaries drop many Chinese answers (about 40% in the recipe).
Source spans are always strict: a widened ``[QUE]`` would swallow neighbouring text. Target answers that overlap are dropped (``overlap``), pairs left without a
span are dropped (``no_span_left``). Malformed records are errors naming file and line.

Layout written (``DEST/``)::

    dict.txt  <spm model>                the dictionary and sentencepiece model used
    clism.json                           format version, [QUE] symbol, dictionary size,
                                         counts per split, drop counts, inputs
    {split}.src.{bin,idx}                English token ids (unmasked, no <s>/</s>)
    {split}.tgt.{bin,idx}                target-language token ids
    {split}.spans.{bin,idx}              4 ints per span: source first, source last,
                                         answer first, answer last (piece indices into
                                         the .src / .tgt row, inclusive), source order

``split`` is ``train`` and, with ``--valid-lines N``, ``valid`` (N random pairs).
"""
import json
import logging
import os
from typing import List, Optional, Tuple

from . import InputError
from .atomic import atomic_directory
from .binarize import check_holdout, copy_vocabulary, split_holdout
from .text import iter_lines

logger = logging.getLogger(__name__)

FORMAT = "xsl_clism_spans/1"
METADATA_FILE = "clism.json"


def _check_span(record: dict, side: str, span, where: str) -> Tuple[int, int]:
    text = record[side]
    if (not isinstance(span, dict) or not isinstance(span.get(side), list) or len(span[side]) != 2
            or not all(isinstance(v, int) for v in span[side])):
        raise InputError(f"{where}: each span needs \"{side}\": [begin, end] (integers)")
    begin, end = span[side]
    if not 0 <= begin < end <= len(text):
        raise InputError(f"{where}: {side} span [{begin}, {end}) is outside the {len(text)}-character sentence")
    expected = span.get(f"{side}_text")
    if expected is not None and text[begin:end] != expected:
        raise InputError(f"{where}: {side} span [{begin}, {end}) covers {text[begin:end]!r}, "
                         f"not {side}_text {expected!r}")
    return begin, end


def read_records(path: str):
    """Yield ``(where, record)`` with validated fields; errors name ``file:line``."""
    for number, line in iter_lines(path):
        where = f"{path}:{number}"
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise InputError(f"{where}: not valid JSON ({err.msg})") from err
        if not isinstance(record, dict) or not isinstance(record.get("src"), str) \
                or not isinstance(record.get("tgt"), str) or not isinstance(record.get("spans"), list):
            raise InputError(f"{where}: expected an object with \"src\", \"tgt\" (strings) and \"spans\" (a list)")
        if not record["src"].strip() or not record["tgt"].strip():
            raise InputError(f"{where}: empty sentence")
        spans = []
        for span in record["spans"]:
            spans.append((_check_span(record, "src", span, where), _check_span(record, "tgt", span, where)))
        ordered = sorted(spans)
        for (a, _), (b, _) in zip(ordered, ordered[1:]):
            if b[0] < a[1]:
                raise InputError(f"{where}: source spans {list(a)} and {list(b)} overlap")
        yield where, record["src"], record["tgt"], ordered


def _covering_pieces(char_spans, begin: int, end: int) -> Optional[Tuple[int, int]]:
    covering = [i for i, (b, e) in enumerate(char_spans) if e > begin and b < end]
    if not covering:
        return None
    return covering[0], covering[-1]


def piece_span(text: str, char_spans, begin: int, end: int, absorb_leading_space: bool, widen: bool = False):
    """Inclusive piece indices of ``text[begin:end]``, or None if a boundary piece
    reaches into a neighbouring word (``widen``: then the covering pieces)."""
    found = _covering_pieces(char_spans, begin, end)
    if found is None:
        return None
    first, last = found
    if not widen and (text[char_spans[first][0]:begin].strip() or text[end:char_spans[last][1]].strip()):
        return None
    if absorb_leading_space:
        while first > 0 and not text[char_spans[first - 1][0]:char_spans[first - 1][1]].strip():
            first -= 1
    return first, last


def binarize_clism(inputs: List[str], spm_model: str, dict_path: str, destdir: str,
                   valid_lines: int = 0, seed: int = 1, widen_answers: bool = False) -> dict:
    from xsl_fairseq.data.dictionary import QUE_SYMBOL, load_dictionary
    from xsl_fairseq.data.features import write_sequences
    from xsl_fairseq.evaluation.pretrained import TextEncoder

    for path in (spm_model, dict_path):
        if not os.path.isfile(path):
            raise InputError(f"{path}: not found")
    dictionary = load_dictionary(dict_path)
    encoder = TextEncoder(spm_model, dictionary)
    drops = {"subword_boundary": 0, "overlap": 0, "no_span_left": 0}
    widened = 0
    examples, spans_read = [], 0
    records = {path: list(read_records(path)) for path in inputs}  # all files checked before encoding
    for path in inputs:
        for where, src, tgt, spans in records[path]:
            spans_read += len(spans)
            src_ids, src_chars = encoder.encode_with_offsets(src)
            tgt_ids, tgt_chars = encoder.encode_with_offsets(tgt)
            kept = []
            for (s_begin, s_end), (t_begin, t_end) in spans:
                source = piece_span(src, src_chars, s_begin, s_end, absorb_leading_space=True)
                answer = piece_span(tgt, tgt_chars, t_begin, t_end, absorb_leading_space=False)
                if answer is None and widen_answers and source is not None:
                    answer = piece_span(tgt, tgt_chars, t_begin, t_end, absorb_leading_space=False, widen=True)
                    widened += answer is not None
                if source is None or answer is None:
                    drops["subword_boundary"] += 1
                    continue
                kept.append((*source, *answer))
            overlapping = {a for a in range(len(kept)) for b in range(len(kept))
                           if a != b and kept[a][2] <= kept[b][3] and kept[b][2] <= kept[a][3]}
            drops["overlap"] += len(overlapping)
            kept = [span for k, span in enumerate(kept) if k not in overlapping]
            if not kept:
                drops["no_span_left"] += 1
                continue
            examples.append((src_ids, tgt_ids, [v for span in kept for v in span]))
    if not examples:
        raise InputError(f"{', '.join(inputs)}: no pair with a usable span")
    check_holdout(len(examples), valid_lines, source=", ".join(inputs))
    train, valid = split_holdout(examples, valid_lines, seed)
    counts = {}
    with atomic_directory(destdir) as staging:  # all splits and clism.json, or nothing
        for split, rows in (("train", train), ("valid", valid)):
            if not rows:
                continue
            prefix = os.path.join(staging, split)
            write_sequences(prefix + ".src", [r[0] for r in rows])
            write_sequences(prefix + ".tgt", [r[1] for r in rows])
            write_sequences(prefix + ".spans", [r[2] for r in rows])
            counts[split] = {"pairs": len(rows), "spans": sum(len(r[2]) // 4 for r in rows),
                             "source_tokens": sum(len(r[0]) for r in rows),
                             "target_tokens": sum(len(r[1]) for r in rows)}
        copy_vocabulary(dict_path, spm_model, staging)
        metadata = {"format": FORMAT, "que_symbol": QUE_SYMBOL, "dictionary_size": len(dictionary),
                    "inputs": list(inputs), "spans_read": spans_read, "drops": drops, "answers_widened": widened,
                    "splits": counts}
        with open(os.path.join(staging, METADATA_FILE), "w", encoding="utf-8") as out:
            json.dump(metadata, out, indent=2)
    logger.info("binarized %s into %s (spans read %d, dropped %s)", counts, destdir, spans_read, drops)
    return metadata
