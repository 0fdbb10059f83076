"""``xsl-prep trelm-align``: word-aligned parallel data for TreLM's CdLM objective (``--task xsl_trelm_cdlm``).

TreLM (arXiv 2107.12627; official code agcbi2017/TreLM, ``scripts/read_alignment_to_jsonl.py``) gives every
target token the index of the source token whose state the TRILayer reads. The official pipeline runs
fast_align on WordPiece tokens; here words are aligned and the links mapped onto sentencepiece pieces:

1. **Words** come from :mod:`preprocess.word_tokenize` (``--word-tokenizer``, default ``auto``:
   sacremoses for space-delimited languages, jieba / fugashi / PyThaiNLP for zh / ja / th), with
   raw-text offsets, so "Haus," is the two words "Haus" and ",". With ``--alignments`` (Pharaoh ``i-j``
   links from an external aligner) the default is ``whitespace``: the links refer to the file's
   whitespace-separated tokens. ``--word-tokenizer whitespace`` keeps the earlier behaviour.
2. **Links**: eflomal over the whole corpus in both directions, symmetrised (``--symmetrize``,
   grow-diag-final-and), with :mod:`preprocess.word_alignment` (shared with ``clism-spans``).
3. **Pieces**: each piece belongs to the word holding its first visible character (a piece that is
   only the word-start marker ``▁`` belongs to the word after it). The k-th piece of target word j
   reads the min(k, n-1)-th piece of the source word i linked to j (n = pieces of i): monotone inside a
   word pair. A target word with several links keeps the **last** one (the largest source word index),
   as the official code, whose later links overwrite earlier ones. Unlinked pieces get -1.
   The same is done the other way round (``align_rev``: for every source piece a target piece), so one
   directory serves both transfer directions (``--trelm-stage upper``: source -> target;
   ``lower``: target -> source).

Drops, counted in ``trelm.json`` and the log: a side empty (``empty_side``), a side with more than
``--max-tokens-per-side`` pieces (``too_long``), no link at all (``no_link``). Line-count mismatches,
malformed links and links past a sentence's end are errors naming ``file:line``, found for every line
(also those dropped later) before any sentence is encoded.

Layout written (``DEST/``)::

    dict.txt  <spm model>      the dictionary and sentencepiece model used
    trelm.json                 format, languages, dictionary size, counts per split, drops
    {split}.src.{bin,idx}      source piece ids (no <s>/</s>)
    {split}.tgt.{bin,idx}      target piece ids
    {split}.align.{bin,idx}    per target piece: the source piece index it reads, or -1
    {split}.align_rev.{bin,idx} per source piece: the target piece index, or -1
"""
import json
import logging
import os
from typing import Dict, List, Optional, Sequence, Set, Tuple

from . import InputError
from .atomic import atomic_directory
from .binarize import check_holdout, copy_vocabulary, split_holdout
from .text import count_lines, iter_lines
from .word_tokenize import get_tokenizer, resolve, tokenizer_fallbacks, whitespace_words
from .word_alignment import SYMMETRIZATIONS, Link, check_link_range, eflomal_align, read_pharaoh_file

logger = logging.getLogger(__name__)

FORMAT = "xsl_trelm_align/1"
METADATA_FILE = "trelm.json"
UNALIGNED = -1
DROP_REASONS = ("empty_side", "too_long", "no_link")

def piece_words(text: str, piece_spans: Sequence[Tuple[int, int]],
                words: Optional[Sequence[Tuple[int, int]]] = None) -> Tuple[List[int], int]:
    """For each piece (``[begin, end)`` characters of ``text``) the index of its word (see the
    module docstring), and the number of words. ``words`` are ``[begin, end)`` word offsets in
    text order (default: whitespace words)."""
    words = whitespace_words(text) if words is None else list(words)
    owner, w = [], 0
    for begin, end in piece_spans:
        visible = next((c for c in range(begin, end) if not text[c].isspace()), None)
        anchor = visible if visible is not None else end
        while w < len(words) and words[w][1] <= anchor:
            w += 1
        owner.append(min(w, len(words) - 1) if words else UNALIGNED)
    return owner, len(words)


def piece_alignment(links: Set[Link], src_owner: List[int], tgt_owner: List[int]) -> List[int]:
    """For every target piece the source piece it reads (:data:`UNALIGNED` if its word has no link)."""
    source_of_word: Dict[int, int] = {}
    for i, j in sorted(links):  # the last link of a target word wins
        source_of_word[j] = i
    pieces_of_word: Dict[int, List[int]] = {}
    for position, word in enumerate(src_owner):
        pieces_of_word.setdefault(word, []).append(position)
    result, seen_in_word = [], {}
    for word in tgt_owner:
        k = seen_in_word.get(word, 0)
        seen_in_word[word] = k + 1
        source_pieces = pieces_of_word.get(source_of_word.get(word))
        result.append(source_pieces[min(k, len(source_pieces) - 1)] if source_pieces else UNALIGNED)
    return result


def _word_tokenizer(name: str, lang: str):
    """The word tokeniser ``name`` for ``lang`` (``auto`` resolved); scripts without a segmenter
    here (lo, km, my) fall back to whitespace words."""
    resolved = resolve(name, lang)
    return get_tokenizer(resolved or "whitespace", lang)


def _read_corpus(src_path: str, tgt_path: str, alignments_path: Optional[str]):
    counts = {path: count_lines(path) for path in filter(None, (src_path, tgt_path, alignments_path))}
    if len(set(counts.values())) > 1:
        raise InputError("files differ in line count: " + ", ".join(f"{p} has {n}" for p, n in counts.items()))
    src_lines = list(iter_lines(src_path))
    tgt_lines = [text for _, text in iter_lines(tgt_path)]
    align_lines = read_pharaoh_file(alignments_path) if alignments_path else None
    return src_lines, tgt_lines, align_lines


def align_corpus(src_path: str, tgt_path: str, src_lang: str, tgt_lang: str, spm_model: str, dict_path: str,
                 destdir: str, alignments_path: Optional[str] = None, symmetrization: str = "grow-diag-final-and",
                 max_tokens_per_side: int = 126, valid_lines: int = 0, seed: int = 1,
                 word_tokenizer: Optional[str] = None) -> dict:
    from xsl_fairseq.data.dictionary import load_dictionary
    from xsl_fairseq.data.features import write_sequences
    from xsl_fairseq.evaluation.pretrained import TextEncoder

    if symmetrization not in SYMMETRIZATIONS:
        raise InputError(f"--symmetrize {symmetrization!r}: choose from {', '.join(SYMMETRIZATIONS)}")
    if src_lang == tgt_lang:
        raise InputError(f"source and target language are both {src_lang!r}")
    if max_tokens_per_side < 1:
        raise InputError(f"--max-tokens-per-side must be positive, got {max_tokens_per_side}")
    for path in (spm_model, dict_path):
        if not os.path.isfile(path):
            raise InputError(f"{path}: not found")
    # with --alignments the links count the file's whitespace tokens, so those are the words
    word_tokenizer = word_tokenizer or ("whitespace" if alignments_path else "auto")
    src_words_of, tgt_words_of = (_word_tokenizer(word_tokenizer, lang) for lang in (src_lang, tgt_lang))
    dictionary = load_dictionary(dict_path)
    encoder = TextEncoder(spm_model, dictionary)
    src_lines, tgt_lines, align_lines = _read_corpus(src_path, tgt_path, alignments_path)
    if not src_lines:
        raise InputError(f"{src_path}: empty file")
    words_of_line = None
    if align_lines is not None:
        # every line's links against its words before any encoding (a pair dropped later as too
        # long still has to have a well-formed alignment line)
        words_of_line = [(src_words_of(src.strip()), tgt_words_of(tgt.strip()))
                         for (_, src), tgt in zip(src_lines, tgt_lines)]
        for (number, _), (src_words, tgt_words), pair_links in zip(src_lines, words_of_line, align_lines):
            check_link_range(pair_links, len(src_words), len(tgt_words), f"{alignments_path}:{number}")

    drops = {reason: 0 for reason in DROP_REASONS}
    kept = []  # (line number, src ids, tgt ids, src owners, tgt owners, number of words per side)
    for k, ((number, src), tgt) in enumerate(zip(src_lines, tgt_lines)):
        src, tgt = src.strip(), tgt.strip()
        if not src or not tgt:
            drops["empty_side"] += 1
            continue
        src_ids, src_spans = encoder.encode_with_offsets(src)
        tgt_ids, tgt_spans = encoder.encode_with_offsets(tgt)
        if len(src_ids) > max_tokens_per_side or len(tgt_ids) > max_tokens_per_side:
            drops["too_long"] += 1
            continue
        src_words, tgt_words = words_of_line[k] if words_of_line is not None else (src_words_of(src), tgt_words_of(tgt))
        src_owner, _ = piece_words(src, src_spans, src_words)
        tgt_owner, _ = piece_words(tgt, tgt_spans, tgt_words)
        kept.append((k, number, src_ids, tgt_ids, src_owner, tgt_owner,
                     [src[b:e] for b, e in src_words], [tgt[b:e] for b, e in tgt_words]))

    if align_lines is not None:
        links = [set(align_lines[row[0]]) for row in kept]
    else:
        links = eflomal_align([row[6] for row in kept], [row[7] for row in kept], symmetrization) if kept else []

    examples, aligned_pieces, target_pieces = [], 0, 0
    for row, pair_links in zip(kept, links):
        if not pair_links:
            drops["no_link"] += 1
            continue
        _, _, src_ids, tgt_ids, src_owner, tgt_owner, _, _ = row
        forward = piece_alignment(pair_links, src_owner, tgt_owner)
        reverse = piece_alignment({(j, i) for i, j in pair_links}, tgt_owner, src_owner)
        aligned_pieces += sum(a != UNALIGNED for a in forward)
        target_pieces += len(forward)
        examples.append((src_ids, tgt_ids, forward, reverse))
    if not examples:
        raise InputError(f"{src_path} / {tgt_path}: no usable pair (drops: {drops})")
    check_holdout(len(examples), valid_lines, source=f"{src_path} / {tgt_path}")
    train, valid = split_holdout(examples, valid_lines, seed)
    splits = {}
    with atomic_directory(destdir) as staging:  # all splits and trelm.json, or nothing
        for split, rows in (("train", train), ("valid", valid)):
            if not rows:
                continue
            prefix = os.path.join(staging, split)
            for part, column in (("src", 0), ("tgt", 1), ("align", 2), ("align_rev", 3)):
                write_sequences(f"{prefix}.{part}", [r[column] for r in rows])
            splits[split] = {"pairs": len(rows), "source_tokens": sum(len(r[0]) for r in rows),
                             "target_tokens": sum(len(r[1]) for r in rows)}
        copy_vocabulary(dict_path, spm_model, staging)
        metadata = {
            "format": FORMAT, "src_lang": src_lang, "tgt_lang": tgt_lang, "dictionary_size": len(dictionary),
            "inputs": [src_path, tgt_path] + ([alignments_path] if alignments_path else []),
            "aligner": "pharaoh file" if alignments_path else f"eflomal ({symmetrization})",
            "word_tokenizer": word_tokenizer, "tokenizer_fallback_lines": tokenizer_fallbacks(),
            "pairs_read": len(src_lines), "drops": drops, "splits": splits,
            "aligned_target_piece_fraction": round(aligned_pieces / max(target_pieces, 1), 4),
        }
        with open(os.path.join(staging, METADATA_FILE), "w", encoding="utf-8") as out:
            json.dump(metadata, out, indent=2)
    logger.info("trelm-align: %d of %d pairs kept (drops %s), %.1f%% of target pieces aligned -> %s",
                len(examples), len(src_lines), drops, 100 * metadata["aligned_target_piece_fraction"], destdir)
    return metadata
