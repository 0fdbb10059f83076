"""Word-positioned samples (WPS) for ML-CTL: ``xsl-prep mlctl-wps``.

For every line-aligned English / xx sentence pair and every bilingual-dictionary entry
``(english word, xx word)`` the pair yields one sample when the English word occurs
exactly once in the English sentence and its translation occurs exactly once in the xx
sentence (ML-CTL, Chen et al. 2022; the official ``data/proc00.py`` does the same with a
4,243-word list). A pair may yield several samples, one per matched word. Each sample
stores the word's sub-token span on both sides, as inclusive positions in the token
sequence ``<s> pieces </s>`` (``<s>`` = position 0).

Matching rules (the choices this implementation makes):

* **Case-insensitive**, on ``str.lower`` of each word (offsets stay those of the raw line).
* **Words** (``--word-tokenizer``, :mod:`preprocess.word_tokenize`; offsets always refer to
  the raw line). ``auto`` (default): sacremoses for English and the space-delimited
  languages (so "Paris," and "l'homme" give the words "Paris" and "homme"), jieba /
  fugashi + UniDic-lite / PyThaiNLP for zh / ja / th. ``regex`` is the rule of earlier
  versions: a word is a maximal run of letters, combining marks and digits, hyphens inside
  a run join it (``well-known`` is one word, so ``known`` does not match inside it),
  apostrophes separate. ``whitespace``: runs of non-space characters (punctuation stays
  attached). A dictionary entry is tokenised like the text of its language, and entries of
  several words match the same sequence of words.
* **Languages written without spaces** (``--unspaced-languages``, default zh, ja, th, lo,
  km, my): the translation is counted as a substring, as the official code does for
  Chinese, and with a segmenter only where it starts and ends on the segmenter's word
  boundaries (so 好 does not match inside 不好); without one (``regex``, and lo / km / my
  under ``auto``) anywhere. A dictionary word nested inside a longer matched translation
  (天 inside 天气) is not counted separately.
* **Exactly once** on each side. Several translations of one English word may be listed;
  the sample is kept only when their occurrences in the xx sentence amount to exactly one
  position (after dropping matches nested in a longer match). Otherwise the candidate is
  dropped and counted as ambiguous. When two English words point at the same xx position,
  the first (in sentence order) keeps it.
* **Stop words excluded**: a built-in English list (:data:`ENGLISH_STOP_WORDS`, or
  ``--stop-words FILE``); on the xx side, every dictionary translation of an English stop
  word (MUSE lists ``die @ the``, so German ``die`` is a stop word). Entries without a
  letter on either side (``#the``, ``us$`` are not words) are ignored.
* **Sub-token alignment.** The word's character span must start and end on sentencepiece
  piece boundaries (the leading ``▁`` of a piece is not part of the word); otherwise the
  candidate is dropped and counted, like the official code's requirement that the word's
  own sub-tokens appear in the tokenised sentence.
* **Length.** Pairs with a side longer than ``--max-tokens-per-side`` tokens (``<s>`` and
  ``</s>`` included; default 128 as in the official code) are dropped and counted.

Dictionary formats (``--dictionary-format``, ``auto`` picks from the first line):
``hunalign`` = ``xx @ en`` (the MUSE files in ``shared/data/muse_dicts``), ``tsv`` = two
tab-separated columns, ``muse`` = two whitespace-separated columns (MUSE's own release).
``tsv``/``muse`` are English first unless ``--dictionary-columns xx-en``. A line that does
not follow the format is an :class:`InputError` naming ``file:line``.

Output (``--destdir``; read by ``--task xsl_mlctl``)::

    dict.txt, <spm model>                copies of the vocabulary files (xsl-eval finds them here)
    {split}.x.tokens.{bin,idx}           English sentences, <s> ids </s> (one per kept pair)
    {split}.y.tokens.{bin,idx}           the xx sentences, same order
    {split}.wps.npy                      int64 [samples, 6]: pair index, x start, x end,
                                         y start, y end (inclusive positions), language index
    {split}.wps.tsv                      the same samples, readable: language, corpus line,
                                         English word, xx word, spans
    mining.json                          languages, counts per language, options

``valid`` holds ``--valid-pairs`` random sentence pairs (all their samples), so no
sentence is in both splits.
"""
import dataclasses
import json
import logging
import os
import shutil
import time
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Set, Tuple

import numpy as np
import regex

from . import InputError
from .atomic import atomic_directory
from . import word_tokenize
from .binarize import check_holdout, split_holdout
from .text import count_lines, iter_lines

logger = logging.getLogger(__name__)

# Words: letters, marks and digits; an inner hyphen joins (compounds stay one word).
WORD_PATTERN = regex.compile(r"[\p{L}\p{M}\p{N}]+(?:[-\u2010\u2011][\p{L}\p{M}\p{N}]+)*")
_PLAIN_PHRASE = regex.compile(r"[\p{L}\p{M}\p{N}]+(?: [\p{L}\p{M}\p{N}]+)*")
WORD_TOKENIZERS = ("auto", "regex") + word_tokenize.TOKENIZERS
DEFAULT_UNSPACED_LANGUAGES = ("zh", "ja", "th", "lo", "km", "my")
DICTIONARY_FORMATS = ("auto", "hunalign", "tsv", "muse")
SAMPLE_COLUMNS = ("pair", "x_start", "x_end", "y_start", "y_end", "language")

# Function words of English (plus the pieces that contractions split into: don't -> don, t).
ENGLISH_STOP_WORDS = frozenset("""
a about above after again against ago all almost also although always am among an and another any
anyone anything are around as at be became because become been before being below between both but
by can cannot could did do does doing done down during each either else even ever every few for from
further get gets getting got had has have having he her here hers herself him himself his how however
i if in into is it its itself just least less let like made make many may me might more most much must
my myself neither no nor not now of off often on once one only onto or other others our ours ourselves
out over own per perhaps quite rather same several shall she should since so some such than that the
their theirs them themselves then there therefore these they this those though through thus to too
toward towards under until up upon us very via was we well were what whatever when where whether which
while who whom whose why will with within without would yet you your yours yourself yourselves
s t d ll m re ve don doesn didn isn aren wasn weren hasn haven hadn won wouldn shouldn couldn mustn
""".split())


@dataclasses.dataclass
class BilingualDictionary:
    """English word -> translations (lower-cased), after stop-word filtering."""

    path: str
    translations: Dict[str, Set[str]]
    entries_read: int
    entries_kept: int
    english_ngram_lengths: Set[int]
    foreign_ngram_lengths: Set[int]


@dataclasses.dataclass
class MiningCounts:
    pairs_seen: int = 0
    pairs_with_empty_side: int = 0
    pairs_over_max_length: int = 0
    pairs_without_match: int = 0
    pairs_with_samples: int = 0
    samples: int = 0
    # candidates: an English dictionary word that occurs exactly once
    candidates_without_translation: int = 0  # no translation in the xx sentence
    candidates_ambiguous: int = 0  # translations at more than one xx position
    candidates_not_piece_aligned: int = 0  # word boundary inside a sentencepiece piece
    candidates_position_taken: int = 0  # xx position already used by an earlier word

    def add(self, other: "MiningCounts") -> None:
        for f in dataclasses.fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


@dataclasses.dataclass
class MinedPair:
    language: str
    source: str  # "corpus file:line" of the English side
    x_ids: List[int]  # <s> ... </s>
    y_ids: List[int]
    samples: List[Tuple[int, int, int, int, str, str]]  # x_start, x_end, y_start, y_end, en, xx


LoweredWord = Tuple[str, int, int]  # lower-cased word, start, end


def _words(text: str) -> List[LoweredWord]:
    """(lower-cased word, start, end) of every word of ``text`` (the ``regex`` rule)."""
    return [(m.group().lower(), m.start(), m.end()) for m in WORD_PATTERN.finditer(text)]


def _entry_key(phrase: str, words: Callable[[str], List[LoweredWord]] = _words) -> Optional[str]:
    found = [w for w, _, _ in words(phrase)]
    return " ".join(found) if found else None


@dataclasses.dataclass
class WordRule:
    """How the words of one language are found and its dictionary translations matched."""

    tokenizer: str  # as resolved: regex, moses, jieba, fugashi, pythainlp, whitespace
    words: Callable[[str], List[LoweredWord]]
    substring: bool  # translations counted as substrings (a language written without spaces)
    on_word_boundaries: bool  # ... only where they start and end on boundaries of ``words``

    def entry_key(self, phrase: str) -> Optional[str]:
        if self.substring or self.tokenizer == "regex":
            return _entry_key(phrase)
        if _PLAIN_PHRASE.fullmatch(phrase.strip()):
            # letters and digits between single spaces: every tokenizer here splits them alike
            return phrase.strip().lower()
        return _entry_key(phrase, self.words)


def parse_word_tokenizer_spec(spec: str) -> Tuple[str, Dict[str, str]]:
    """``"auto"`` / ``"regex"`` / ``"auto,zh=jieba,de=whitespace"`` -> (default, per language)."""
    default, per_language = "auto", {}
    for item in (part.strip() for part in spec.split(",")):
        if not item:
            continue
        lang, _, name = item.rpartition("=")
        if name not in WORD_TOKENIZERS:
            raise InputError(f"--word-tokenizer {spec!r}: unknown tokenizer {name!r}; choose from "
                             f"{', '.join(WORD_TOKENIZERS)}")
        if lang:
            per_language[word_tokenize.normalize_language(lang)] = name
        else:
            default = name
    return default, per_language


def word_rule(name: str, lang: str, unspaced: bool) -> WordRule:
    """The :class:`WordRule` of tokenizer ``name`` (``auto`` resolved by language) for ``lang``."""
    resolved = "regex" if name == "regex" else word_tokenize.resolve(name, lang)
    if resolved in (None, "regex"):
        return WordRule("regex", _words, unspaced, on_word_boundaries=False)
    tokenizer = word_tokenize.get_tokenizer(resolved, lang)
    strip_period = resolved == "moses"

    def words(text: str) -> List[LoweredWord]:
        found = []
        for b, e in tokenizer(text):
            if strip_period and e - b > 1 and text[e - 1] == "." and text[e - 2].isalpha():
                e -= 1  # Moses keeps the period of an abbreviation ("Dec.", "etc."); dictionaries do not
            found.append((text[b:e].lower(), b, e))
        return found
    return WordRule(resolved, words, unspaced, on_word_boundaries=unspaced)


def _has_letter(text: str) -> bool:
    return any(ch.isalpha() for ch in text)


def _parse_dictionary_line(line: str, fmt: str, path: str, number: int) -> Tuple[str, str]:
    if fmt == "hunalign":
        parts = line.split(" @ ")
        what = "'xx @ en' (hunalign)"
    elif fmt == "tsv":
        parts = line.split("\t")
        what = "two tab-separated columns"
    else:
        parts = line.split()
        what = "two whitespace-separated columns (MUSE)"
    parts = [p.strip() for p in parts]
    if len(parts) != 2 or not all(parts):
        raise InputError(f"{path}:{number}: expected {what}, got {line!r}")
    return parts[0], parts[1]


def detect_dictionary_format(path: str) -> str:
    for _, line in iter_lines(path):
        if not line.strip():
            continue
        if " @ " in line:
            return "hunalign"
        return "tsv" if "\t" in line else "muse"
    raise InputError(f"{path}: dictionary is empty")


def read_bilingual_dictionary(
    path: str,
    fmt: str = "auto",
    columns: str = "en-xx",
    stop_words: Iterable[str] = ENGLISH_STOP_WORDS,
    english_key: Callable[[str], Optional[str]] = _entry_key,
    foreign_key: Callable[[str], Optional[str]] = _entry_key,
) -> BilingualDictionary:
    """Read a bilingual dictionary and drop stop words (see the module docstring).

    ``english_key`` / ``foreign_key`` turn an entry into the words it must match, joined by
    single spaces (:meth:`WordRule.entry_key`; default: the ``regex`` rule)."""
    if fmt not in DICTIONARY_FORMATS:
        raise InputError(f"unknown dictionary format {fmt!r}; choose from {', '.join(DICTIONARY_FORMATS)}")
    if columns not in ("en-xx", "xx-en"):
        raise InputError(f"--dictionary-columns must be en-xx or xx-en, got {columns!r}")
    if fmt == "auto":
        fmt = detect_dictionary_format(path)
    english_first = fmt != "hunalign" and columns == "en-xx"
    stop_words = {w.lower() for w in stop_words}
    pairs, read = [], 0
    for number, line in iter_lines(path):
        if not line.strip():
            continue
        first, second = _parse_dictionary_line(line, fmt, path, number)
        english, foreign = (first, second) if english_first else (second, first)
        read += 1
        pairs.append((english, foreign))
    if not read:
        raise InputError(f"{path}: dictionary is empty")
    keys = [(english_key(english), foreign_key(foreign)) for english, foreign in pairs]
    foreign_stop = {xx for en, xx in keys if en in stop_words and xx}
    translations: Dict[str, Set[str]] = {}
    for key, xx_key in keys:
        if not key or not xx_key or not _has_letter(key) or not _has_letter(xx_key):
            continue
        if key in stop_words or xx_key in foreign_stop:
            continue
        translations.setdefault(key, set()).add(xx_key)
    kept = sum(len(v) for v in translations.values())
    logger.info(
        "%s (%s): %d entries, %d kept after stop words (%d English words; %d xx stop words)",
        path, fmt, read, kept, len(translations), len(foreign_stop),
    )
    return BilingualDictionary(
        path=path,
        translations=translations,
        entries_read=read,
        entries_kept=kept,
        english_ngram_lengths={k.count(" ") + 1 for k in translations},
        foreign_ngram_lengths={t.count(" ") + 1 for v in translations.values() for t in v},
    )


def _ngram_spans(words: List[LoweredWord], lengths: Set[int]) -> Dict[str, List[Tuple[int, int]]]:
    """Every n-gram (n in ``lengths``) of the words of a text -> its character spans."""
    spans: Dict[str, List[Tuple[int, int]]] = {}
    for n in lengths:
        for i in range(len(words) - n + 1):
            key = " ".join(w for w, _, _ in words[i:i + n])
            spans.setdefault(key, []).append((words[i][1], words[i + n - 1][2]))
    return spans


def _lower_same_length(text: str) -> str:
    """Lower-case without changing any character offset (İ stays İ)."""
    return "".join(ch.lower() if len(ch.lower()) == 1 else ch for ch in text)


def _substring_spans(lowered: str, needle: str) -> List[Tuple[int, int]]:
    spans, start = [], lowered.find(needle)
    while start >= 0:
        spans.append((start, start + len(needle)))
        start = lowered.find(needle, start + 1)
    return spans


def _outermost(spans: Iterable[Tuple[int, int]]) -> List[Tuple[int, int]]:
    """Distinct spans, without those nested inside another span."""
    unique = sorted(set(spans), key=lambda s: (s[0], -s[1]))
    kept: List[Tuple[int, int]] = []
    for begin, end in unique:
        if any(b <= begin and end <= e for b, e in kept):
            continue
        kept.append((begin, end))
    return kept


def _piece_span(offsets: Sequence[Tuple[int, int]], text: str, begin: int, end: int) -> Optional[Tuple[int, int]]:
    """Indices of the first and last piece of the character span ``[begin, end)``, or
    ``None`` when a piece crosses either boundary."""
    first = last = None
    for index, (piece_begin, piece_end) in enumerate(offsets):
        content_begin = piece_begin
        while content_begin < piece_end and text[content_begin].isspace():
            content_begin += 1
        if content_begin == piece_end:
            continue  # a piece that is only whitespace (a lone "▁")
        if content_begin == begin:
            first = index
        if piece_end == end:
            last = index
        if content_begin < begin < piece_end or content_begin < end < piece_end:
            return None
    if first is None or last is None or last < first:
        return None
    return first, last


class WpsMiner:
    """Finds the word-positioned samples of one sentence pair (see the module docstring)."""

    def __init__(self, text_encoder, dictionary: BilingualDictionary, language: str,
                 max_tokens_per_side: int, english: WordRule, foreign: WordRule):
        self.text_encoder = text_encoder
        self.dictionary = dictionary
        self.language = language
        self.max_tokens_per_side = max_tokens_per_side
        self.english, self.foreign = english, foreign
        self.bos = text_encoder.dictionary.bos()
        self.eos = text_encoder.dictionary.eos()

    def _xx_spans(self, xx_lowered: str, xx_ngrams, boundaries, translations: Set[str]):
        spans = []
        for translation in translations:
            if self.foreign.substring:
                spans += _substring_spans(xx_lowered, translation.replace(" ", ""))
            else:
                spans += xx_ngrams.get(translation, [])
        if boundaries is not None:
            starts, ends = boundaries
            spans = [(b, e) for b, e in spans if b in starts and e in ends]
        return _outermost(spans)

    def mine(self, en_text: str, xx_text: str, source: str, counts: MiningCounts) -> Optional[MinedPair]:
        counts.pairs_seen += 1
        if not en_text or not xx_text:
            counts.pairs_with_empty_side += 1
            return None
        x_pieces, x_offsets = self.text_encoder.encode_with_offsets(en_text)
        y_pieces, y_offsets = self.text_encoder.encode_with_offsets(xx_text)
        if max(len(x_pieces), len(y_pieces)) + 2 > self.max_tokens_per_side:
            counts.pairs_over_max_length += 1
            return None
        en_ngrams = _ngram_spans(self.english.words(en_text), self.dictionary.english_ngram_lengths)
        xx_ngrams = xx_lowered = boundaries = None
        if self.foreign.substring:
            xx_lowered = _lower_same_length(xx_text)
            if self.foreign.on_word_boundaries:
                xx_words = self.foreign.words(xx_text)
                boundaries = ({b for _, b, _ in xx_words}, {e for _, _, e in xx_words})
        else:
            xx_ngrams = _ngram_spans(self.foreign.words(xx_text), self.dictionary.foreign_ngram_lengths)
        samples, taken = [], set()
        once = sorted((spans[0], key) for key, spans in en_ngrams.items()
                      if len(spans) == 1 and key in self.dictionary.translations)
        for (en_begin, en_end), key in once:
            xx_spans = self._xx_spans(xx_lowered, xx_ngrams, boundaries, self.dictionary.translations[key])
            if not xx_spans:
                counts.candidates_without_translation += 1
                continue
            if len(xx_spans) > 1:
                counts.candidates_ambiguous += 1
                continue
            xx_begin, xx_end = xx_spans[0]
            x_span = _piece_span(x_offsets, en_text, en_begin, en_end)
            y_span = _piece_span(y_offsets, xx_text, xx_begin, xx_end)
            if x_span is None or y_span is None:
                counts.candidates_not_piece_aligned += 1
                continue
            if (xx_begin, xx_end) in taken:
                counts.candidates_position_taken += 1
                continue
            taken.add((xx_begin, xx_end))
            # +1: position 0 of the stored sequence is <s>
            samples.append((x_span[0] + 1, x_span[1] + 1, y_span[0] + 1, y_span[1] + 1,
                            en_text[en_begin:en_end], xx_text[xx_begin:xx_end]))
        if not samples:
            counts.pairs_without_match += 1
            return None
        counts.pairs_with_samples += 1
        counts.samples += len(samples)
        return MinedPair(self.language, source, [self.bos, *x_pieces, self.eos],
                         [self.bos, *y_pieces, self.eos], samples)


def _check_line_counts(en_path: str, xx_path: str) -> None:
    en_count, xx_count = count_lines(en_path), count_lines(xx_path)
    if en_count != xx_count:
        raise InputError(f"parallel files differ in line count: {en_path} has {en_count} lines, "
                         f"{xx_path} has {xx_count}")


def _iter_corpus(en_path: str, xx_path: str, max_pairs: Optional[int]):
    _check_line_counts(en_path, xx_path)
    for index, ((number, en), (_, xx)) in enumerate(zip(iter_lines(en_path), iter_lines(xx_path))):
        if max_pairs is not None and index >= max_pairs:
            break
        yield number, en.strip(), xx.strip()


def read_stop_words(path: str) -> Set[str]:
    return {line.strip().lower() for _, line in iter_lines(path) if line.strip()}


def _write_split(destdir: str, split: str, pairs: List[MinedPair], languages: List[str]) -> int:
    from xsl_fairseq.data.features import write_sequences

    prefix = os.path.join(destdir, split)
    write_sequences(prefix + ".x.tokens", (p.x_ids for p in pairs))
    write_sequences(prefix + ".y.tokens", (p.y_ids for p in pairs))
    rows = [(index, *sample[:4], languages.index(pair.language))
            for index, pair in enumerate(pairs) for sample in pair.samples]
    table = np.asarray(rows, dtype=np.int64).reshape(-1, len(SAMPLE_COLUMNS))
    np.save(prefix + ".wps.npy", table)
    with open(prefix + ".wps.tsv", "w", encoding="utf-8") as out:
        out.write("language\tsource\ten_word\txx_word\tx_start\tx_end\ty_start\ty_end\n")
        for pair in pairs:
            for x_start, x_end, y_start, y_end, en_word, xx_word in pair.samples:
                out.write(f"{pair.language}\t{pair.source}\t{en_word}\t{xx_word}\t"
                          f"{x_start}\t{x_end}\t{y_start}\t{y_end}\n")
    return len(rows)


def mine_wps(
    corpora: List[Tuple[str, str, str]],
    dictionaries: Dict[str, str],
    spm_model: str,
    dict_path: str,
    destdir: str,
    dictionary_format: str = "auto",
    dictionary_columns: str = "en-xx",
    stop_words_path: Optional[str] = None,
    max_tokens_per_side: int = 128,
    valid_pairs: int = 0,
    max_pairs_per_corpus: Optional[int] = None,
    unspaced_languages: Sequence[str] = DEFAULT_UNSPACED_LANGUAGES,
    seed: int = 1,
    word_tokenizer: str = "auto",
) -> dict:
    """Mine and binarize word-positioned samples.

    ``corpora``: ``(language, english file, xx file)`` triples; ``dictionaries``:
    language -> dictionary file; ``word_tokenizer``: see :func:`parse_word_tokenizer_spec`
    (``regex`` = the rule of earlier versions). Returns the content of ``mining.json``.
    """
    from xsl_fairseq.data.dictionary import load_dictionary
    from xsl_fairseq.evaluation.pretrained import TextEncoder

    if not corpora:
        raise InputError("no corpus given (--corpus LANG EN_FILE XX_FILE)")
    missing = sorted({lang for lang, _, _ in corpora} - set(dictionaries))
    if missing:
        raise InputError(f"no dictionary for language(s) {', '.join(missing)} (--dictionary LANG FILE)")
    if not os.path.isfile(dict_path):
        raise InputError(f"{dict_path}: dictionary not found (xsl-prep spm-train writes one)")
    if not os.path.isfile(spm_model):
        raise InputError(f"{spm_model}: sentencepiece model not found")
    if max_tokens_per_side < 3:
        raise InputError(f"--max-tokens-per-side {max_tokens_per_side}: must leave room for <s>, a word and </s>")
    for _, en_path, xx_path in corpora:  # every corpus before the dictionaries are read and the first is mined
        _check_line_counts(en_path, xx_path)
    default_tokenizer, tokenizer_of = parse_word_tokenizer_spec(word_tokenizer)
    text_encoder = TextEncoder(spm_model, load_dictionary(dict_path))
    stop_words = read_stop_words(stop_words_path) if stop_words_path else ENGLISH_STOP_WORDS
    languages = sorted({lang for lang, _, _ in corpora})
    rules = {lang: word_rule(tokenizer_of.get(word_tokenize.normalize_language(lang), default_tokenizer), lang,
                             lang in unspaced_languages) for lang in ["en", *languages]}
    bilingual = {lang: read_bilingual_dictionary(dictionaries[lang], dictionary_format, dictionary_columns, stop_words,
                                                 rules["en"].entry_key, rules[lang].entry_key)
                 for lang in languages}

    per_language = {lang: MiningCounts() for lang in languages}
    seconds = {lang: 0.0 for lang in languages}
    mined: List[MinedPair] = []
    for lang, en_path, xx_path in corpora:
        miner = WpsMiner(text_encoder, bilingual[lang], lang, max_tokens_per_side, rules["en"], rules[lang])
        counts = MiningCounts()
        started = time.perf_counter()
        for number, en, xx in _iter_corpus(en_path, xx_path, max_pairs_per_corpus):
            pair = miner.mine(en, xx, f"{en_path}:{number}", counts)
            if pair is not None:
                mined.append(pair)
        seconds[lang] += time.perf_counter() - started
        logger.info("%s / %s (%s): %s", en_path, xx_path, lang, dataclasses.asdict(counts))
        per_language[lang].add(counts)
    if not mined:
        raise InputError("no word-positioned sample found in any corpus (check the dictionary languages "
                         "and --max-tokens-per-side)")

    check_holdout(len(mined), valid_pairs, source=", ".join(f"{en} / {xx}" for _, en, xx in corpora))
    train, valid = split_holdout(mined, valid_pairs, seed)
    splits = {"train": train, **({"valid": valid} if valid else {})}
    split_samples = {split: sum(len(pair.samples) for pair in pairs) for split, pairs in splits.items()}
    total = MiningCounts()
    for counts in per_language.values():
        total.add(counts)
    report = {
        "languages": languages,
        "sample_columns": list(SAMPLE_COLUMNS),
        "counts": dataclasses.asdict(total),
        "counts_per_language": {lang: dataclasses.asdict(c) for lang, c in per_language.items()},
        "pairs_per_second": {lang: round(per_language[lang].pairs_seen / seconds[lang], 1) if seconds[lang] else None
                             for lang in languages},
        "word_tokenizers": {lang: rule.tokenizer + (" (substrings on its word boundaries)" if rule.on_word_boundaries
                                                    else " (substrings)" if rule.substring else "")
                            for lang, rule in rules.items()},
        "tokenizer_fallback_lines": word_tokenize.tokenizer_fallbacks(),
        "split_pairs": {"train": len(train), "valid": len(valid)},
        "split_samples": split_samples,
        "dictionaries": {lang: {"path": d.path, "entries_read": d.entries_read, "entries_kept": d.entries_kept}
                         for lang, d in bilingual.items()},
        "options": {"corpora": [list(c) for c in corpora], "max_tokens_per_side": max_tokens_per_side,
                    "max_pairs_per_corpus": max_pairs_per_corpus, "unspaced_languages": list(unspaced_languages),
                    "word_tokenizer": word_tokenizer,
                    "stop_words": stop_words_path or "built-in English list", "seed": seed,
                    "spm_model": os.path.abspath(spm_model), "dict": os.path.abspath(dict_path)},
    }
    with atomic_directory(destdir) as staging:  # every split and mining.json, or nothing
        for path in (dict_path, spm_model):
            shutil.copyfile(path, os.path.join(staging, os.path.basename(path)))
        for split, pairs in splits.items():
            _write_split(staging, split, pairs, languages)
        with open(os.path.join(staging, "mining.json"), "w", encoding="utf-8") as out:
            json.dump(report, out, indent=2, ensure_ascii=False)
    logger.info("mined %s; samples per split %s; written to %s", report["counts"], split_samples, destdir)
    return report
