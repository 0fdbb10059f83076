"""Readers for the data of zero-shot cross-lingual evaluation (xsl-eval).

Every file is read as UTF-8 (a leading byte-order mark is ignored), lines end at
``\\n`` only (a trailing ``\\r`` is dropped), and the first malformed line raises
:class:`preprocess.InputError` with a message that starts with ``"{path}:{line}: "``
(1-based line). For SQuAD JSON the place is ``"{path}:data[i].paragraphs[j].qas[k]: "``
(0-based JSON indices), or ``"{path}:{line}: "`` for invalid JSON. Nothing malformed
is skipped silently.

Formats:

* sentence pairs (XNLI and PAWS-X in the XTREME layout): ``text_a<TAB>text_b<TAB>label``,
  no header; fields may carry CSV quoting (see :func:`read_sentence_pair_tsv`);
* SQuAD v1.1 JSON (MLQA, XQuAD): :func:`read_squad_json`;
* IOB2 NER, either CoNLL columns (MasakhaNER, CoNLL-2003: ``token ... tag``) or the
  Universal NER layout (CoNLL-U-like ``id<TAB>token<TAB>tag<TAB>...``): :func:`read_iob2`;
* CoNLL-U (Universal Dependencies) forms and UPOS: :func:`read_conllu`;
* XTREME POS tsv (``token<TAB>UPOS``): :func:`read_xtreme_pos_tsv`;
* line-aligned text pairs (FLORES, NTREX, LASER Tatoeba): :func:`read_line_aligned`;
* one file (or file pair) per language in an evaluation folder: :func:`discover_language_files`.
"""
import csv
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple, Union

from preprocess import InputError
from preprocess.languages import short_language_code  # noqa: F401 (part of this module's API)
from preprocess.text import iter_lines

logger = logging.getLogger(__name__)

PathLike = Union[str, Path]
TaggedSentence = Tuple[List[str], List[str]]


def _lines(path: PathLike) -> Iterator[Tuple[int, str]]:
    """``(line_number, text)`` of a UTF-8 file; errors name the file and line."""
    for number, text in iter_lines(str(path)):
        if number == 1 and text.startswith("\ufeff"):
            text = text[1:]
        yield number, text


# ---------------------------------------------------------------------------
# Sentence pairs: XNLI, PAWS-X
# ---------------------------------------------------------------------------

@dataclass
class SentencePairExample:
    text_a: str
    text_b: str
    label: str
    line: int = 0  # 1-based line in its file, for error messages


_TEXT_A_NAMES = ("sentence1", "premise", "s1", "text_a")
_TEXT_B_NAMES = ("sentence2", "hypothesis", "hypo", "s2", "text_b")
_LABEL_NAMES = ("label", "gold_label")


def _split_tsv_fields(line: str) -> Tuple[List[str], bool]:
    """Fields of one tab-separated line and whether it had to be split verbatim.

    A field that is CSV-quoted (``"..."`` with inner quotes doubled, as the XTREME
    PAWS-X files have) is unquoted. Quotes inside an unquoted field are text. A line
    that is not valid CSV (a field starting with a quote that does not close it, such
    as ``"Yes" he said``) is split on tabs with every field kept verbatim: that text
    was never CSV-quoted. Each physical line is parsed on its own, so a stray quote
    can never swallow the following lines.
    """
    try:
        return next(csv.reader([line], delimiter="\t", quotechar='"', doublequote=True,
                               strict=True)), False
    except csv.Error:
        return line.split("\t"), True


def _header_columns(fields: List[str], path: PathLike) -> Optional[Tuple[int, int, int]]:
    """Column indices (text_a, text_b, label) if ``fields`` is a header line, else None."""
    names = [field.strip().lower() for field in fields]
    if not any(name in _LABEL_NAMES for name in names):
        return None

    def find(candidates):
        for index, name in enumerate(names):
            if name in candidates:
                return index
        raise InputError(
            f"{path}:1: header line {fields!r} names no column among {', '.join(candidates)}"
        )

    return find(_TEXT_A_NAMES), find(_TEXT_B_NAMES), find(_LABEL_NAMES)


def read_sentence_pair_tsv(path: PathLike) -> List[SentencePairExample]:
    """Sentence-pair classification examples of an XNLI or PAWS-X tsv file.

    Layout (XTREME): ``text_a<TAB>text_b<TAB>label``, one example per line, no header.
    A first line that names a ``label`` (or ``gold_label``) column is a header instead,
    and the columns are then taken by name: text_a from sentence1/premise/s1/text_a,
    text_b from sentence2/hypothesis/hypo/s2/text_b (so the original PAWS-X files,
    ``id sentence1 sentence2 label``, read too). CSV quoting is removed field by field
    (see :func:`_split_tsv_fields`). Labels are kept as strings (``entailment``,
    ``1``, ...); PAWS-X's ``NS`` placeholder for untranslated text is kept as text.
    """
    examples: List[SentencePairExample] = []
    columns, expected_fields = (0, 1, 2), 3
    verbatim_lines = 0
    for number, line in _lines(path):
        fields, verbatim = _split_tsv_fields(line)
        if number == 1:
            header = _header_columns(fields, path)
            if header is not None:
                columns, expected_fields = header, len(fields)
                continue
        if len(fields) != expected_fields:
            raise InputError(
                f"{path}:{number}: expected {expected_fields} tab-separated fields "
                f"(text_a, text_b, label), found {len(fields)}"
            )
        text_a, text_b, label = (fields[index] for index in columns)
        if not label.strip():
            raise InputError(f"{path}:{number}: empty label")
        for name, text in (("text_a", text_a), ("text_b", text_b)):
            if not text.strip():  # no XNLI / PAWS-X line has one: a lost field or a stray tab
                raise InputError(f"{path}:{number}: empty {name}")
        verbatim_lines += verbatim
        examples.append(SentencePairExample(text_a, text_b, label.strip(), number))
    if not examples:
        raise InputError(f"{path}: no examples")
    if verbatim_lines:
        logger.warning("%s: %d lines have an unbalanced quote and were read verbatim",
                       path, verbatim_lines)
    return examples


# ---------------------------------------------------------------------------
# SQuAD v1.1 JSON: MLQA, XQuAD
# ---------------------------------------------------------------------------

@dataclass
class QAExample:
    qid: str
    question: str
    context: str
    answers: List[str]
    answer_starts: List[int]
    where: str = ""  # "data[i].paragraphs[j].qas[k]", for messages

    def answer_matches_context(self, index: int) -> bool:
        """Whether ``answers[index]`` is the text at ``answer_starts[index]`` of the context."""
        start, text = self.answer_starts[index], self.answers[index]
        return 0 <= start and self.context[start:start + len(text)] == text


def _load_json(path: PathLike):
    try:
        with open(path, encoding="utf-8-sig") as handle:
            return json.load(handle)
    except OSError as err:
        raise InputError(f"{path}: cannot open ({err.strerror})") from err
    except UnicodeDecodeError as err:
        raise InputError(f"{path}: not valid UTF-8 ({err.reason})") from err
    except json.JSONDecodeError as err:
        raise InputError(f"{path}:{err.lineno}: not valid JSON ({err.msg})") from err


def read_squad_json(path: PathLike, strict_offsets: bool = False) -> List[QAExample]:
    """Questions of a SQuAD v1.1 file (MLQA and XQuAD use this format).

    Format: ``{"data": [{"title": ..., "paragraphs": [{"context": str, "qas": [{"id": str,
    "question": str, "answers": [{"text": str, "answer_start": int}, ...]}]}]}]}``.
    Every question needs at least one answer (SQuAD 2.0 unanswerable questions are not
    supported) and a unique id.

    An ``answer_start`` that does not point at its answer text (the real MLQA dev files
    have none, other SQuAD-format files sometimes do) is kept, because scoring uses only
    the answer text; it is logged as a warning. Fine-tuning code that needs the span
    should check :meth:`QAExample.answer_matches_context`. ``strict_offsets=True`` makes
    such an answer an error instead.
    """
    data = _load_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        raise InputError(f"{path}:1: expected a SQuAD JSON object with a 'data' list")
    examples: List[QAExample] = []
    seen_ids: Dict[str, str] = {}
    offset_mismatches: List[str] = []

    def require(container, key, kind, where):
        value = container.get(key) if isinstance(container, dict) else None
        if not isinstance(value, kind) or isinstance(value, bool):
            raise InputError(f"{path}:{where}: missing or invalid {key!r} "
                             f"(expected {kind.__name__})")
        return value

    for a, article in enumerate(data["data"]):
        for p, paragraph in enumerate(require(article, "paragraphs", list, f"data[{a}]")):
            where = f"data[{a}].paragraphs[{p}]"
            context = require(paragraph, "context", str, where)
            for q, qa in enumerate(require(paragraph, "qas", list, where)):
                where = f"data[{a}].paragraphs[{p}].qas[{q}]"
                qid = require(qa, "id", str, where)
                question = require(qa, "question", str, where)
                answers = require(qa, "answers", list, where)
                if not answers:
                    raise InputError(f"{path}:{where}: question {qid!r} has no answer "
                                     "(SQuAD 2.0 unanswerable questions are not supported)")
                if qid in seen_ids:
                    raise InputError(f"{path}:{where}: question id {qid!r} already used at "
                                     f"{seen_ids[qid]}")
                seen_ids[qid] = where
                texts = [require(ans, "text", str, f"{where}.answers[{i}]")
                         for i, ans in enumerate(answers)]
                starts = [require(ans, "answer_start", int, f"{where}.answers[{i}]")
                          for i, ans in enumerate(answers)]
                example = QAExample(qid, question, context, texts, starts, where)
                for i in range(len(texts)):
                    if not example.answer_matches_context(i):
                        place = f"{path}:{where}.answers[{i}]"
                        if strict_offsets:
                            raise InputError(f"{place}: answer_start {starts[i]} does not point "
                                             f"at the answer {texts[i]!r}")
                        offset_mismatches.append(place)
                examples.append(example)
    if not examples:
        raise InputError(f"{path}: no questions")
    if offset_mismatches:
        logger.warning("%s: %d answers whose answer_start does not point at their text "
                       "(kept; first: %s)", path, len(offset_mismatches), offset_mismatches[0])
    return examples


def repair_answer_offsets(examples: List[QAExample], path: PathLike,
                          nearby: int = 64) -> Tuple[List[QAExample], List[str], List[str]]:
    """Training questions whose first answer can be located in the passage.

    An ``answer_start`` that does not point at its answer text is moved to the occurrence
    of the text nearest to it within ``nearby`` characters (off-by-a-few offsets, as
    left by a changed whitespace or encoding); a question whose answer text is not found
    that near is dropped (training on another occurrence far away, or on the given wrong
    span, would teach the wrong answer). Returns ``(kept, fixed places, dropped places)``,
    each place ``"{path}:data[i].paragraphs[j].qas[k]"``.
    """
    kept, fixed, dropped = [], [], []
    for example in examples:
        if example.answer_matches_context(0):
            kept.append(example)
            continue
        start, text = example.answer_starts[0], example.answers[0]
        low = max(0, start - nearby)
        found = [low + i for i in _occurrences(example.context[low:start + nearby + len(text)], text)]
        place = f"{path}:{example.where}"
        if not found or not text:
            dropped.append(place)
            continue
        nearest = min(found, key=lambda position: abs(position - start))
        kept.append(QAExample(example.qid, example.question, example.context, example.answers,
                              [nearest] + example.answer_starts[1:], example.where))
        fixed.append(place)
    return kept, fixed, dropped


def _occurrences(text: str, pattern: str) -> List[int]:
    positions, position = [], text.find(pattern)
    while pattern and position >= 0:
        positions.append(position)
        position = text.find(pattern, position + 1)
    return positions


# ---------------------------------------------------------------------------
# Token-level tasks: IOB2 NER, CoNLL-U and XTREME POS
# ---------------------------------------------------------------------------

_IOB2_TAG = re.compile(r"^(O|[BI]-\S+)$")
_MULTIWORD_ID = re.compile(r"^\d+-\d+$")
_EMPTY_NODE_ID = re.compile(r"^\d+\.\d+$")
_COLUMN_SEPARATOR = re.compile(r"[ \t]+")


def _is_uner_layout(first_line: str) -> bool:
    """Whether a file whose first non-blank line is ``first_line`` is CoNLL-U-like.

    Universal NER files open with ``# key = value`` comments or a word line
    ``1<TAB>token<TAB>tag...``; a CoNLL column file's first line is a token and a tag
    (the token may itself be ``#``: MasakhaNER 2.0 kin test opens with ``# O``).
    """
    if first_line.startswith("#"):
        return " = " in first_line
    fields = first_line.split("\t")
    return len(fields) >= 3 and fields[0] == "1"


def read_iob2(path: PathLike, repair_entity_starts: bool = False) -> List[TaggedSentence]:
    """``(tokens, tags)`` per sentence of an IOB2 NER file; the layout is chosen by content.

    * CoNLL columns (MasakhaNER, CoNLL-2003): ``token [more columns] tag`` separated by
      spaces or tabs; the tag is the LAST column; ``-DOCSTART-`` lines are skipped.
    * Universal NER (``*.iob2``): ``# ...`` comment lines, then
      ``id<TAB>token<TAB>tag<TAB>...``; the tag is the THIRD column (the columns after it
      are annotation metadata such as the annotator name); multiword-token ranges
      (``3-4``) and empty nodes (``3.1``) are skipped.

    Sentences are separated by one or more blank lines. Every tag must be ``O``,
    ``B-TYPE`` or ``I-TYPE``; an ``I-TYPE`` that does not continue an entity of its type
    is read as an entity start, as seqeval's default mode and conlleval score it. With
    ``repair_entity_starts`` (training data) it is rewritten to ``B-TYPE``, so that the
    model learns one tag for entity starts; how many, and the first ``file:line``, are logged.
    """
    sentences: List[TaggedSentence] = []
    tokens: List[str] = []
    tags: List[str] = []
    uner_layout: Optional[bool] = None
    entity_starts_as_i: List[int] = []  # line numbers

    def end_sentence():
        nonlocal tokens, tags
        if tokens:
            sentences.append((tokens, tags))
            tokens, tags = [], []

    for number, line in _lines(path):
        if not line.strip():
            end_sentence()
            continue
        if uner_layout is None:
            uner_layout = _is_uner_layout(line)
        if uner_layout:
            if line.startswith("#"):
                continue
            fields = line.split("\t")
            if len(fields) < 3:
                raise InputError(f"{path}:{number}: expected id<TAB>token<TAB>tag (Universal NER "
                                 f"layout), found {len(fields)} tab-separated field(s)")
            if _MULTIWORD_ID.match(fields[0]) or _EMPTY_NODE_ID.match(fields[0]):
                continue
            if not fields[0].isdigit():
                raise InputError(f"{path}:{number}: word id {fields[0]!r} is not a number")
            token, tag = fields[1], fields[2]
        else:
            fields = _COLUMN_SEPARATOR.split(line.strip(" \t"))
            if fields[0] == "-DOCSTART-":
                end_sentence()
                continue
            if len(fields) < 2:
                raise InputError(f"{path}:{number}: expected a token and a tag, found {line!r}")
            token, tag = fields[0], fields[-1]
        if not _IOB2_TAG.match(tag):
            raise InputError(f"{path}:{number}: tag {tag!r} is not O, B-TYPE or I-TYPE")
        if tag.startswith("I-") and (not tags or tags[-1][2:] != tag[2:]):
            entity_starts_as_i.append(number)
            if repair_entity_starts:
                tag = "B-" + tag[2:]
        tokens.append(token)
        tags.append(tag)
    end_sentence()
    if not sentences:
        raise InputError(f"{path}: no sentences")
    if entity_starts_as_i:
        logger.warning("%s: %d entities start with I- instead of B- (first: %s:%d); %s", path,
                       len(entity_starts_as_i), path, entity_starts_as_i[0],
                       "rewritten to B-" if repair_entity_starts else "read as entity starts (seqeval)")
    return sentences


def read_conllu(path: PathLike) -> List[TaggedSentence]:
    """``(forms, UPOS tags)`` per sentence of a CoNLL-U file.

    Word lines have 10 tab-separated columns (FORM is column 2, UPOS column 4); ``#``
    comment lines, multiword-token ranges (``3-4``) and empty nodes (``3.1``) are
    skipped, so the result holds the syntactic words UPOS is annotated on. Word ids must
    run 1, 2, 3, ... within a sentence (a break means a missing blank line). UPOS is kept
    verbatim (``_`` where a treebank leaves it unannotated).
    """
    sentences: List[TaggedSentence] = []
    forms: List[str] = []
    upos: List[str] = []
    for number, line in _lines(path):
        if not line.strip():
            if forms:
                sentences.append((forms, upos))
                forms, upos = [], []
            continue
        if line.startswith("#"):
            continue
        fields = line.split("\t")
        if len(fields) != 10:
            raise InputError(f"{path}:{number}: a CoNLL-U word line has 10 tab-separated "
                             f"columns, found {len(fields)}")
        word_id = fields[0]
        if _MULTIWORD_ID.match(word_id) or _EMPTY_NODE_ID.match(word_id):
            continue
        if not word_id.isdigit():
            raise InputError(f"{path}:{number}: word id {word_id!r} is not a number")
        if int(word_id) != len(forms) + 1:
            raise InputError(f"{path}:{number}: word id {word_id} where {len(forms) + 1} was "
                             "expected (missing blank line between sentences?)")
        if not fields[3].strip():
            raise InputError(f"{path}:{number}: empty UPOS column")
        forms.append(fields[1])
        upos.append(fields[3])
    if forms:
        sentences.append((forms, upos))
    if not sentences:
        raise InputError(f"{path}: no sentences")
    return sentences


def read_xtreme_pos_tsv(path: PathLike) -> List[TaggedSentence]:
    """``(tokens, UPOS tags)`` per sentence of an XTREME POS file.

    Format: ``token<TAB>UPOS``, one token per line, blank lines between sentences.
    XTREME's test files, whose tags were removed, fail here on purpose.
    """
    sentences: List[TaggedSentence] = []
    tokens: List[str] = []
    tags: List[str] = []
    for number, line in _lines(path):
        if not line.strip():
            if tokens:
                sentences.append((tokens, tags))
                tokens, tags = [], []
            continue
        fields = line.split("\t")
        if len(fields) != 2 or not fields[1].strip():
            raise InputError(f"{path}:{number}: expected token<TAB>UPOS, found {line!r}")
        tokens.append(fields[0])
        tags.append(fields[1].strip())
    if tokens:
        sentences.append((tokens, tags))
    if not sentences:
        raise InputError(f"{path}: no sentences")
    return sentences


# ---------------------------------------------------------------------------
# Line-aligned text (retrieval)
# ---------------------------------------------------------------------------

def read_line_aligned(path_a: PathLike, path_b: PathLike) -> List[Tuple[str, str]]:
    """Pairs ``(line of path_a, line of path_b)`` of two line-aligned files.

    Lines are split on ``\\n`` only (not on U+2028 and the like, which would shift the
    alignment). Empty lines are kept, since dropping one would misalign the rest. Files
    of different line counts are an error naming both files and both counts.
    """
    lines_a = [text for _, text in _lines(path_a)]
    lines_b = [text for _, text in _lines(path_b)]
    if len(lines_a) != len(lines_b):
        (longer, n_longer), (shorter, n_shorter) = sorted(
            [(path_a, len(lines_a)), (path_b, len(lines_b))], key=lambda item: -item[1])
        raise InputError(
            f"{longer}:{n_shorter + 1}: line has no counterpart: {path_a} has {len(lines_a)} "
            f"lines but {path_b} has {len(lines_b)} (files must be line-aligned)"
        )
    return list(zip(lines_a, lines_b))


# ---------------------------------------------------------------------------
# Finding one file (or file pair) per language
# ---------------------------------------------------------------------------

LAYOUTS = ("xtreme_tsv", "mlqa", "conllu", "iob2", "retrieval")

_LAYOUT_PATTERNS = {
    "xtreme_tsv": "{split}-{lang}.tsv",
    "mlqa": "{split}-context-{lang}-question-{lang}.json, {split}/... of those, or xquad.{lang}.json",
    "conllu": "{lang}_{treebank}-ud-{split}.conllu (any depth)",
    "iob2": "{lang}/{split}.txt (MasakhaNER) or {lang}_{treebank}-ud-{split}.iob2 (UNER, any depth)",
    "retrieval": ("{name}.{xx}-eng.{xx} + {name}.{xx}-eng.eng (Tatoeba), [{split}/]{lang}.{split} "
                  "+ eng.{split} (FLORES), {name}-ref.{lang}.txt + {name}-src.eng.txt (NTREX)"),
}


def _add_unique(found: dict, lang: str, value, root: Path) -> None:
    if lang in found and found[lang] != value:
        raise InputError(f"{root}: two files for language {lang!r}: {found[lang]} and {value}")
    found[lang] = value


def _files(directory: Path) -> List[Path]:
    return sorted(path for path in directory.iterdir() if path.is_file())


def _discover_xtreme_tsv(root: Path, split: str) -> Dict[str, Path]:
    pattern = re.compile(rf"^{re.escape(split)}-(?P<lang>.+)\.tsv$")
    found: Dict[str, Path] = {}
    for path in _files(root):
        match = pattern.match(path.name)
        if match:
            _add_unique(found, match["lang"], path, root)
    return found


def _discover_mlqa(root: Path, split: str) -> Dict[str, Path]:
    mlqa = re.compile(rf"^{re.escape(split)}-context-(?P<context>.+?)-question-(?P<question>.+)\.json$")
    xquad = re.compile(r"^xquad\.(?P<lang>[^.]+)\.json$")
    directories = [root] + ([root / split] if (root / split).is_dir() else [])
    found: Dict[str, Path] = {}
    for directory in directories:
        for path in _files(directory):
            match = mlqa.match(path.name)
            if match and match["context"] == match["question"]:
                _add_unique(found, match["context"], path, root)
            match = xquad.match(path.name)
            if match:
                _add_unique(found, match["lang"], path, root)
    return found


def _discover_treebank_files(root: Path, split: str, suffix: str) -> Dict[str, List[Path]]:
    pattern = re.compile(rf"^(?P<lang>[^_]+)_(?P<treebank>.+)-ud-{re.escape(split)}\.{suffix}$")
    found: Dict[str, List[Path]] = {}
    for path in sorted(root.rglob(f"*.{suffix}")):
        match = pattern.match(path.name)
        if match and path.is_file():
            found.setdefault(match["lang"], []).append(path)
    return found


def _discover_conllu(root: Path, split: str) -> Dict[str, List[Path]]:
    return _discover_treebank_files(root, split, "conllu")


def _discover_iob2(root: Path, split: str) -> Dict[str, List[Path]]:
    found = _discover_treebank_files(root, split, "iob2")
    for directory in sorted(path for path in root.iterdir() if path.is_dir()):
        masakhaner_file = directory / f"{split}.txt"
        if masakhaner_file.is_file():
            found.setdefault(directory.name, []).append(masakhaner_file)
    return found


def _discover_retrieval(root: Path, split: str) -> Dict[str, Tuple[Path, Path]]:
    found: Dict[str, Tuple[Path, Path]] = {}
    tatoeba = re.compile(r"^(?P<name>.+)\.(?P<lang>[^.]+)-eng\.(?P=lang)$")
    ntrex = re.compile(r"^(?P<name>.+)-ref\.(?P<lang>.+)\.txt$")
    for path in _files(root):
        match = tatoeba.match(path.name)
        if match and match["lang"] != "eng":
            english = root / f"{match['name']}.{match['lang']}-eng.eng"
            if english.is_file():
                _add_unique(found, match["lang"], (path, english), root)
        match = ntrex.match(path.name)
        if match:
            english = root / f"{match['name']}-src.eng.txt"
            if english.is_file():
                _add_unique(found, match["lang"], (path, english), root)
    # FLORES-101 names English eng.{split}; FLORES-200 names it eng_Latn.{split}
    for directory in [root / split, root]:
        if not directory.is_dir():
            continue
        english = next((directory / f"{name}.{split}" for name in ("eng", "eng_Latn")
                        if (directory / f"{name}.{split}").is_file()), None)
        if english is None:
            continue
        for path in _files(directory):
            if path.suffix == f".{split}" and path != english:
                _add_unique(found, path.name[: -len(split) - 1], (path, english), root)
    return found


_DISCOVERERS = {
    "xtreme_tsv": _discover_xtreme_tsv,
    "mlqa": _discover_mlqa,
    "conllu": _discover_conllu,
    "iob2": _discover_iob2,
    "retrieval": _discover_retrieval,
}


def discover_language_files(eval_dir: PathLike, layout: str, split: str = "test") -> Dict[str, object]:
    """Map language code -> evaluation file(s) found in ``eval_dir``, sorted by code.

    The value type depends on the layout:

    * ``"xtreme_tsv"`` -> ``Path``: ``{split}-{lang}.tsv`` in eval_dir (XNLI, PAWS-X,
      XTREME POS).
    * ``"mlqa"`` -> ``Path``: same-language MLQA ``{split}-context-{xx}-question-{xx}.json``
      in eval_dir or in ``eval_dir/{split}/`` (the MLQA_V1 release layout; cross-language
      files are ignored), and XQuAD ``xquad.{xx}.json`` whatever the split (XQuAD has a
      single split).
    * ``"conllu"`` -> ``List[Path]``: UD ``{lang}_{treebank}-ud-{split}.conllu`` at any
      depth; the language is the part before ``_``, and several treebanks of one language
      are all listed (e.g. ``en_ewt`` and ``en_pud``), so scores may be per file or pooled.
    * ``"iob2"`` -> ``List[Path]``: MasakhaNER ``{lang}/{split}.txt`` one level below
      eval_dir (pass ``masakhaner/v1`` or ``masakhaner/v2``) and Universal NER
      ``{lang}_{treebank}-ud-{split}.iob2`` at any depth (listed per language as for CoNLL-U).
    * ``"retrieval"`` -> ``Tuple[Path, Path]`` = (xx_file, english_file), line-aligned:
      LASER Tatoeba ``{name}.{xx}-eng.{xx}`` + ``{name}.{xx}-eng.eng``; NTREX
      ``{name}-ref.{lang}.txt`` + ``{name}-src.eng.txt``; FLORES ``{lang}.{split}`` +
      ``eng.{split}`` (or ``eng_Latn.{split}``) in ``eval_dir/{split}/`` or eval_dir. Tatoeba
      and NTREX have no split in their names, so ``split`` only matters for FLORES.

    Language codes are the ones in the file names (``de`` for XNLI, ``deu`` for FLORES,
    ``zho-CN`` for NTREX, ``swa`` for MasakhaNER); :func:`short_language_code` maps the
    three-letter ones to ISO 639-1. Languages without a file are absent; a missing
    eval_dir, an unknown layout, two files for one language in a single-file layout, or no
    file at all is an :class:`InputError`.
    """
    if layout not in _DISCOVERERS:
        raise InputError(f"unknown evaluation layout {layout!r}; choose one of {', '.join(LAYOUTS)}")
    root = Path(eval_dir)
    if not root.is_dir():
        raise InputError(f"{root}: evaluation directory not found")
    found = _DISCOVERERS[layout](root, split)
    if not found:
        raise InputError(f"{root}: no {layout} files for split {split!r} "
                         f"(expected {_LAYOUT_PATTERNS[layout]})")
    return dict(sorted(found.items()))


# short_language_code (deu -> de, zho_simpl -> zh) lives in preprocess.languages (xsl-prep uses it too)
