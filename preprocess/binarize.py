"""Binarisation into the ``data-bin/`` layout through ``fairseq-preprocess``.

Layout written (see README)::

    data-bin/
      spm.model  dict.txt                         # xsl-prep spm-train
      mono/      dict.txt  {train,valid}.{bin,idx} # xsl-prep binarize-mono
      para/<src>-<tgt>/                             # xsl-prep binarize-para
                 dict.<src>.txt  dict.<tgt>.txt
                 {train,valid}.<src>-<tgt>.<src|tgt>.{bin,idx}
"""
import logging
import os
import random
import shutil
import tempfile
from typing import List, Optional, Sequence, Tuple

from . import InputError
from .atomic import atomic_directory
from .spm import SentencePieceEncoder, load_sentencepiece
from .text import count_nonempty_lines, read_monolingual, read_parallel, write_lines

logger = logging.getLogger(__name__)


def run_fairseq_preprocess(argv: List[str]) -> None:
    """Run fairseq-preprocess in this process (same as the console script)."""
    from fairseq import options
    from fairseq_cli import preprocess

    parser = options.get_preprocessing_parser()
    preprocess.main(parser.parse_args(argv))


def check_holdout(available: int, holdout: int, source: str = "") -> None:
    """Holding out ``holdout`` of ``available`` examples leaves some for training; ``source``
    (the input files) starts the error message."""
    if holdout < 0:
        raise InputError(f"cannot hold out a negative number ({holdout}) of examples for validation")
    if holdout and holdout >= available:
        raise InputError(f"{source + ': ' if source else ''}cannot hold out {holdout} of only {available} "
                         "examples for validation")


def split_holdout(items: Sequence, holdout: int, seed: int, source: str = "") -> Tuple[list, list]:
    """Random ``holdout`` items for validation, the rest (original order) for training;
    ``source`` (the input files) starts the error message when there are too few items."""
    check_holdout(len(items), holdout, source)
    if holdout == 0:
        return list(items), []
    held = set(random.Random(seed).sample(range(len(items)), holdout))
    train = [item for i, item in enumerate(items) if i not in held]
    valid = [item for i, item in enumerate(items) if i in held]
    return train, valid


def copy_vocabulary(dict_path: str, spm_model: str, destdir: str) -> None:
    """Put ``dict.txt`` and the sentencepiece model beside binarized data (tasks and xsl-eval find them there)."""
    if os.path.abspath(dict_path) != os.path.abspath(os.path.join(destdir, "dict.txt")):
        shutil.copy(dict_path, os.path.join(destdir, "dict.txt"))
    spm_copy = os.path.join(destdir, os.path.basename(spm_model))
    if os.path.abspath(spm_model) != os.path.abspath(spm_copy):
        shutil.copy(spm_model, spm_copy)


def _check_dict(dict_path: str) -> None:
    if not os.path.isfile(dict_path):
        raise InputError(f"{dict_path}: dictionary not found (xsl-prep spm-train writes one)")


def binarize_monolingual(
    inputs: List[str],
    dict_path: str,
    destdir: str,
    spm_model: Optional[str] = None,
    valid_inputs: Optional[List[str]] = None,
    valid_lines: int = 0,
    dedupe: bool = False,
    max_lines_per_file: Optional[int] = None,
    seed: int = 1,
    workers: int = 1,
) -> dict:
    """Raw (or pre-tokenised) text files -> ``destdir/{train,valid}.{bin,idx}``."""
    _check_dict(dict_path)
    encoder = SentencePieceEncoder(spm_model) if spm_model else None
    lines = read_monolingual(inputs, dedupe=dedupe, max_lines_per_file=max_lines_per_file, seed=seed)
    if valid_inputs:
        train, valid = lines, read_monolingual(valid_inputs, seed=seed)
    else:
        train, valid = split_holdout(lines, valid_lines, seed, source=", ".join(inputs))
    if encoder:
        train, valid = encoder.encode_lines(train), encoder.encode_lines(valid)
    with tempfile.TemporaryDirectory() as tmp, atomic_directory(destdir) as staging:
        write_lines(os.path.join(tmp, "train.txt"), train)
        argv = ["--only-source", "--srcdict", dict_path, "--destdir", staging,
                "--trainpref", os.path.join(tmp, "train.txt"), "--workers", str(workers),
                "--dataset-impl", "mmap"]
        if valid:
            write_lines(os.path.join(tmp, "valid.txt"), valid)
            argv += ["--validpref", os.path.join(tmp, "valid.txt")]
        run_fairseq_preprocess(argv)
    stats = {"train_lines": len(train), "valid_lines": len(valid)}
    logger.info("binarized %s into %s", stats, destdir)
    return stats


def binarize_parallel(
    src_lang: str,
    tgt_lang: str,
    train_pairs: List[Tuple[str, str]],
    dict_path: str,
    destdir: str,
    spm_model: Optional[str] = None,
    valid_pairs: Optional[List[Tuple[str, str]]] = None,
    valid_lines: int = 0,
    max_tokens_per_side: int = 0,
    seed: int = 1,
    workers: int = 1,
) -> dict:
    """Pairs of line-aligned files -> ``destdir/{split}.<src>-<tgt>.<lang>.{bin,idx}``.

    ``train_pairs`` and ``valid_pairs`` are ``(source file, target file)`` tuples.
    Pairs with a side longer than ``max_tokens_per_side`` (after sentencepiece;
    0 = no limit) are dropped and counted.
    """
    _check_dict(dict_path)
    if src_lang == tgt_lang:
        raise InputError(f"source and target language are both {src_lang!r}")
    encoder = SentencePieceEncoder(spm_model) if spm_model else None

    def load(file_pairs):
        pairs = []
        for src_path, tgt_path in file_pairs:
            pairs.extend(read_parallel(src_path, tgt_path))
        return pairs

    train = load(train_pairs)
    if valid_pairs:
        valid = load(valid_pairs)
    else:
        train, valid = split_holdout(train, valid_lines, seed,
                                     source=", ".join(f"{s} / {t}" for s, t in train_pairs))
    dropped_long = 0

    def tokenize(pairs):
        nonlocal dropped_long
        if not pairs:
            return [], []
        src = [p[0] for p in pairs]
        tgt = [p[1] for p in pairs]
        if encoder:
            src, tgt = encoder.encode_lines(src), encoder.encode_lines(tgt)
        if max_tokens_per_side > 0:
            keep = [i for i in range(len(src))
                    if len(src[i].split()) <= max_tokens_per_side and len(tgt[i].split()) <= max_tokens_per_side]
            dropped_long += len(src) - len(keep)
            src, tgt = [src[i] for i in keep], [tgt[i] for i in keep]
        return src, tgt

    train_src, train_tgt = tokenize(train)
    valid_src, valid_tgt = tokenize(valid)
    if not train_src:
        raise InputError(f"{', '.join(f'{s} / {t}' for s, t in train_pairs)}: no {src_lang}-{tgt_lang} "
                         "training pairs left after filtering (see the drop counts above)")
    with tempfile.TemporaryDirectory() as tmp, atomic_directory(destdir) as staging:
        write_lines(os.path.join(tmp, f"train.{src_lang}"), train_src)
        write_lines(os.path.join(tmp, f"train.{tgt_lang}"), train_tgt)
        argv = ["--source-lang", src_lang, "--target-lang", tgt_lang,
                "--srcdict", dict_path, "--tgtdict", dict_path, "--destdir", staging,
                "--trainpref", os.path.join(tmp, "train"), "--workers", str(workers),
                "--dataset-impl", "mmap"]
        if valid_src:
            write_lines(os.path.join(tmp, f"valid.{src_lang}"), valid_src)
            write_lines(os.path.join(tmp, f"valid.{tgt_lang}"), valid_tgt)
            argv += ["--validpref", os.path.join(tmp, "valid")]
        run_fairseq_preprocess(argv)
    stats = {"train_pairs": len(train_src), "valid_pairs": len(valid_src),
             "dropped_over_max_tokens": dropped_long}
    logger.info("binarized %s-%s %s into %s", src_lang, tgt_lang, stats, destdir)
    return stats


def parse_language_inputs(inputs: List[str]) -> List[Tuple[str, List[str]]]:
    """``["en=a.txt", "de=b.txt", "en=c.txt"]`` (or ``text.en``: the language is the last
    suffix) -> ``[("de", ["b.txt"]), ("en", ["a.txt", "c.txt"])]``."""
    by_language = {}
    for spec in inputs:
        if "=" in spec:
            lang, path = spec.split("=", 1)
        else:
            path, lang = spec, os.path.splitext(spec)[1].lstrip(".")
        if not lang or not lang.replace("_", "").replace("-", "").isalnum():
            raise InputError(f"{spec}: cannot tell the language; write LANG=PATH (e.g. en={spec})")
        by_language.setdefault(lang, []).append(path)
    return sorted(by_language.items())


def _check_language_inputs(groups, valid_lines: int, max_lines_per_file: Optional[int]) -> None:
    """Every file of every language is readable UTF-8 with text, and each language has more
    lines than it holds out, before the first language is binarized (one pass over the text)."""
    for lang, paths in groups:
        usable = 0
        for path in paths:
            lines = count_nonempty_lines(path)
            if not lines:
                raise InputError(f"{path}: no non-empty lines (language {lang})")
            usable += min(lines, max_lines_per_file) if max_lines_per_file else lines
        if valid_lines and valid_lines >= usable:
            raise InputError(f"{', '.join(paths)}: cannot hold out {valid_lines} of only {usable} lines of "
                             f"language {lang} for validation")


def binarize_per_language(inputs: List[str], dict_path: str, destdir: str, **options) -> dict:
    """One binarized directory per language, fairseq ``multilingual_masked_lm``'s layout
    (``destdir/dict.txt``, ``destdir/<lang>/{dict.txt,train.*,valid.*}``) for ``xsl_meta_mlm``.
    ``options`` are :func:`binarize_monolingual`'s (``spm_model``, ``valid_lines``, ``dedupe``, ...),
    applied to every language."""
    _check_dict(dict_path)
    groups = parse_language_inputs(inputs)
    _check_language_inputs(groups, options.get("valid_lines", 0), options.get("max_lines_per_file"))
    if options.get("spm_model"):
        load_sentencepiece(options["spm_model"])
    with atomic_directory(destdir) as staging:  # every language or none; the top dict.txt last
        stats = {lang: binarize_monolingual(paths, dict_path, os.path.join(staging, lang), **options)
                 for lang, paths in groups}
        shutil.copyfile(dict_path, os.path.join(staging, "dict.txt"))
    logger.info("binarized %d languages into %s: %s", len(groups), destdir, stats)
    return stats
