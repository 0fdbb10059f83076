"""``xsl-eval``: zero-shot cross-lingual evaluation of a pretrained checkpoint.

Fine-tune on English (fairseq-train with this plugin's tasks), evaluate every language
found in the evaluation directory, write ``results.md``, ``results.json``, the predictions
of every language (``predictions/``, ``gold/``) and TensorBoard scalars under ``--out``.
Scores follow XTREME's scripts. ``xsl-eval compare RUN ...`` puts runs side by side with
paired bootstrap intervals. ``xsl-eval <command> --help`` lists the options.
"""
import argparse
import logging
import os
import sys
import time

from preprocess import InputError

from .finetune import TASK_DEFAULTS, FinetuneConfig

logger = logging.getLogger("xsl_eval")


def _evaluation_classes():
    from .qa import QAEvaluation
    from .retrieval import RetrievalEvaluation
    from .sentence_pair import SentencePairEvaluation
    from .tagging import NEREvaluation, POSEvaluation

    return {"sentence-pair": SentencePairEvaluation, "qa": QAEvaluation, "ner": NEREvaluation,
            "pos": POSEvaluation, "retrieval": RetrievalEvaluation}


def _comma_list(text):
    return [item.strip() for item in text.split(",") if item.strip()]


# Numeric options are checked while parsing, so that a bad value fails before the checkpoint
# is read (``--doc-stride 0`` used to loop forever, ``--max-train-examples -1`` silently
# dropped the last example, ``--update-freq 0`` failed after data preparation).
def _number(kind, minimum=None, maximum=None, above=None, below=None):
    """An argparse type: ``kind`` (int / float) within the given bounds."""
    bounds = [f">= {minimum}" if minimum is not None else "", f"> {above}" if above is not None else "",
              f"<= {maximum}" if maximum is not None else "", f"< {below}" if below is not None else ""]
    wanted = " and ".join(bound for bound in bounds if bound)

    def parse(text):
        value = kind(text)  # a ValueError becomes argparse's "invalid ... value"
        if ((minimum is not None and value < minimum) or (above is not None and value <= above)
                or (maximum is not None and value > maximum) or (below is not None and value >= below)):
            raise argparse.ArgumentTypeError(f"{text}: must be {wanted}")
        return value

    parse.__name__ = f"{kind.__name__} {wanted}"
    return parse


POSITIVE_INT = _number(int, minimum=1)
NON_NEGATIVE_INT = _number(int, minimum=0)
# <s> A </s></s> B </s> needs 4 specials and leaves room for a few pieces
SEQUENCE_LENGTH = _number(int, minimum=8)


def _seed_list(text):
    seeds = _comma_list(text)
    if not seeds:
        raise argparse.ArgumentTypeError(f"{text!r}: no seed")
    for seed in seeds:
        if not seed.isdigit():
            raise argparse.ArgumentTypeError(f"{seed!r} in {text!r}: seeds are non-negative integers")
    if len(set(map(int, seeds))) != len(seeds):
        raise argparse.ArgumentTypeError(f"{text!r}: a seed is repeated (its run would be counted twice)")
    return seeds


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="xsl-eval", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)

    def common(p, finetuned=True):
        p.add_argument("--checkpoint", required=True, help="pretrained fairseq checkpoint (model.pt)")
        p.add_argument("--dict", default=None, help="its dict.txt (default: found beside it)")
        p.add_argument("--spm", default=None, help="its sentencepiece model (default: found beside it)")
        p.add_argument("--eval-dir", required=True, help="directory with one file per language")
        p.add_argument("--split", default="dev", help="split name in the file names (dev, test)")
        p.add_argument("--languages", type=_comma_list, default=None, help="only these languages (comma-separated)")
        p.add_argument("--english", default="en", help="code of the source language (reported separately)")
        p.add_argument("--out", required=True, help="output directory (results.md, results.json, tensorboard/)")
        p.add_argument("--max-eval-examples", type=POSITIVE_INT, default=None,
                       help="cap per language (recorded in the JSON)")
        if finetuned:
            p.add_argument("--train", required=True, help="English training file")
            p.add_argument("--max-train-examples", type=POSITIVE_INT, default=None, help="cap on training examples")
            p.add_argument("--seeds", type=_seed_list, default=["1"], help="e.g. 1,2,3: mean and std are reported")
            p.add_argument("--lr", type=_number(float, above=0), default=None)
            p.add_argument("--epochs", type=POSITIVE_INT, default=None)
            p.add_argument("--batch-size", type=POSITIVE_INT, default=32)
            p.add_argument("--update-freq", type=POSITIVE_INT, default=1, help="gradient accumulation steps")
            p.add_argument("--warmup-ratio", type=_number(float, minimum=0, below=1), default=0.1)
            p.add_argument("--weight-decay", type=_number(float, minimum=0), default=0.01)
            p.add_argument("--max-seq-length", type=SEQUENCE_LENGTH, default=None)
            p.add_argument("--fairseq-args", default="",
                           help="extra fairseq-train arguments; write it as --fairseq-args='--freeze-embeddings ...'")
            p.add_argument("--dev", default=None, metavar="FILE",
                           help="English dev file (the --train format): score every epoch's checkpoint on it "
                                "and evaluate the best one (XTREME's model selection); default: the final "
                                "checkpoint")
        return p

    p = common(commands.add_parser("sentence-pair", help="XNLI / PAWS-X (XTREME tsv): accuracy"))
    p.add_argument("--held-out-items", type=NON_NEGATIVE_INT, default=0, metavar="N",
                   help="XNLI / PAWS-X files are translations of each other line by line: evaluate every "
                        "language (English too) on items 1..N only and fine-tune on the English items after "
                        "them, so that no evaluated item is a translation of a training item")
    p.add_argument("--salt", choices=["online", "offline"], default=None,
                   help="fine-tune with SALT (--criterion xsl_salt) instead of sentence_prediction; its options "
                        "(--salt-cs-prob, --salt-mix-prob, ...) go in --fairseq-args; offline: the training split "
                        "is code-switched once by the pretrained model first")

    p = common(commands.add_parser("qa", help="MLQA / XQuAD (SQuAD json): F1 / EM"))
    p.add_argument("--doc-stride", type=POSITIVE_INT, default=128,
                   help="passage pieces between the starts of consecutive windows; where a window holds "
                        "fewer passage pieces, that number is used (so that no piece is skipped; logged)")
    p.add_argument("--max-query-length", type=POSITIVE_INT, default=64)
    p.add_argument("--max-answer-length", type=POSITIVE_INT, default=30)
    p.add_argument("--que-mode", action="store_true",
                   help="CLISM's input <s> question [QUE] </s> passage </s>, answered by the pretrained "
                        "pointer head (clism_pointer) from the [QUE] state")
    p.add_argument("--few-shot", type=NON_NEGATIVE_INT, default=0, metavar="K",
                   help="fine-tune on K questions sampled with each --seeds value (paper: 64..1024)")

    for name, what in (("ner", "IOB2 (UNER, MasakhaNER): entity F1"), ("pos", "CoNLL-U / XTREME tsv: accuracy")):
        p = common(commands.add_parser(name, help=what))
        p.add_argument("--label-subtokens", choices=["first", "all"], default="first",
                       help="train on the first sub-token of each word (default) or on all of them")
        p.add_argument("--salt", choices=["online"], default=None,
                       help="fine-tune with SALT (--criterion xsl_salt_token_labeling) instead of "
                            "xsl_token_labeling; its options (--salt-cs-prob, --salt-mix-prob, ...) go in "
                            "--fairseq-args; substitutes are predicted online by the model being fine-tuned")

    p = common(commands.add_parser("retrieval", help="Tatoeba / FLORES / NTREX line-aligned: accuracy"),
               finetuned=False)
    p.add_argument("--layer", type=int, default=None,
                   help="hidden state to mean-pool: 0 = embedding output, k = Transformer layer k; default "
                        "XTREME's --specific_layer 7, which counts without the embeddings: layer 8 of 12 "
                        "(L/2+2 in general)")
    p.add_argument("--prefix", default="",
                   help="text put before every sentence, e.g. 'query: ' for multilingual-e5")
    p.add_argument("--english-prefix", default=None,
                   help="prefix of the English sentences (default: --prefix)")
    p.add_argument("--representation", choices=["layer", "mlctl", "mlctl-head"], default="layer",
                   help="layer: mean of --layer; mlctl: ML-CTL's avg-first-last vector (mean of layer 1 + mean "
                        "of the last layer); mlctl-head: that vector through the checkpoint's trained ML-CTL MLP")
    p.add_argument("--max-seq-length", type=SEQUENCE_LENGTH, default=128)

    p = commands.add_parser("compare", help="runs side by side (each a results.json) with paired bootstrap "
                                            "95%% intervals of their differences to the first run, and a chart")
    p.add_argument("runs", nargs="+", metavar="RUN", help="results.json of each run (or its directory)")
    p.add_argument("--names", type=_comma_list, default=None, help="row names, comma-separated (default: folders)")
    p.add_argument("--metric", default=None, help="metric to compare (default: the evaluation's headline)")
    p.add_argument("--out", required=True, help="output directory (compare.md, compare.json, compare.png)")
    p.add_argument("--bootstrap-samples", type=POSITIVE_INT, default=1000)
    p.add_argument("--bootstrap-seed", type=int, default=1, help="fixed, so that a comparison is reproducible")
    return parser


def validate(args, parser) -> None:
    """Option errors that need no model: reported before anything expensive starts."""
    if args.command == "compare":
        return
    if getattr(args, "dev", None):
        if not os.path.isfile(args.dev):
            parser.error(f"--dev {args.dev}: file not found")
        if os.path.abspath(args.dev) == os.path.abspath(args.train):
            parser.error(f"--dev {args.dev} is the --train file: select on data the model is not trained on")
        if getattr(args, "few_shot", 0):
            parser.error("--dev with --few-shot: the few-shot protocol evaluates the final checkpoint")
    if args.command == "qa":
        # BERT's SQuAD recipe: a window holds the question (at most --max-query-length) and 3 specials
        max_seq_length = args.max_seq_length or TASK_DEFAULTS["qa"]["max_seq_length"]
        room = max_seq_length - args.max_query_length - 3
        if room < 1:
            parser.error(f"--max-seq-length {max_seq_length} leaves no room for the passage after a "
                         f"{args.max_query_length}-piece question (--max-query-length)")


def finetune_config(args) -> FinetuneConfig:
    defaults = TASK_DEFAULTS[args.command]
    return FinetuneConfig(
        lr=args.lr if args.lr is not None else defaults["lr"],
        epochs=args.epochs if args.epochs is not None else defaults["epochs"],
        batch_size=args.batch_size, update_freq=args.update_freq, warmup_ratio=args.warmup_ratio,
        weight_decay=args.weight_decay, max_seq_length=args.max_seq_length or defaults["max_seq_length"],
        extra_fairseq_args=args.fairseq_args,
    )


def run(args) -> str:
    from .predictions import PredictionWriter
    from .pretrained import PretrainedModel, TextEncoder
    from .report import summarise, write_report

    started = time.time()
    for option in ("train", "dev"):  # cheap: before the checkpoint is read
        path = getattr(args, option, None)
        if path is not None and not os.path.isfile(path):
            raise InputError(f"{path}: --{option} file not found")
    if not os.path.isdir(args.eval_dir):
        raise InputError(f"{args.eval_dir}: evaluation directory not found")
    pretrained = PretrainedModel.resolve(args.checkpoint, args.dict, args.spm)
    text_encoder = TextEncoder(pretrained.spm_path, pretrained.dictionary())
    workdir = os.path.join(args.out, "work")
    finetuned = hasattr(args, "train")
    ft_config = finetune_config(args) if finetuned else None
    if finetuned:
        args.max_seq_length = ft_config.max_seq_length
    if args.max_seq_length > pretrained.max_positions:
        logger.warning("--max-seq-length %d exceeds the model's %d positions; using %d",
                       args.max_seq_length, pretrained.max_positions, pretrained.max_positions)
        args.max_seq_length = pretrained.max_positions
        if ft_config:
            ft_config.max_seq_length = pretrained.max_positions
    evaluation = _evaluation_classes()[args.command](args, pretrained, text_encoder, workdir)

    counts = evaluation.prepare()
    skipped = sorted(set(args.languages or []) - set(counts))
    for lang in skipped:
        logger.warning("%s: no %s file for language %r in %s; skipped", args.command, args.split, lang, args.eval_dir)
    if not counts:
        raise InputError(f"{args.eval_dir}: no {args.split} file for any requested language")
    languages = sorted(counts)
    logger.info("evaluating %d languages: %s", len(languages), ", ".join(languages))
    prepared = time.time()

    writer = PredictionWriter(args.out, evaluation.prediction_format)
    for lang in languages:
        if lang in evaluation.gold:  # retrieval knows its gold only after the first seed
            writer.gold(lang, evaluation.gold[lang])
    per_seed, seed_times = [], {}
    for seed in (args.seeds if finetuned else ["none"]):
        seed_start = time.time()
        save_dir = os.path.join(workdir, f"checkpoints_seed{seed}")
        tensorboard = os.path.join(args.out, "tensorboard", f"finetune_seed{seed}")
        per_seed.append(evaluation.run_seed(int(seed) if finetuned else None, ft_config, save_dir,
                                            tensorboard, languages))
        for lang in languages:
            writer.predictions(seed if finetuned else 1, lang, evaluation.predictions[lang])
        seed_times[str(seed)] = round(time.time() - seed_start, 1)
    for lang in languages:
        if lang not in writer.index["gold"]:
            writer.gold(lang, evaluation.gold[lang])

    config = {
        "command": args.command,
        "arguments": {k: v for k, v in vars(args).items() if k != "func"},
        "pretrained": vars(pretrained),
        "finetune": ft_config.as_dict() if ft_config else None,
        "examples_per_language": counts,
        "skipped_languages": skipped,
        "train_examples": getattr(evaluation, "num_train", None),
        "wall_time_s": {"prepare": round(prepared - started, 1), "per_seed": seed_times,
                        "total": round(time.time() - started, 1)},
        "metric_definitions": evaluation.metric_definitions(),
        "model_selection": "final checkpoint" if not getattr(args, "dev", None) else None,
        **getattr(evaluation, "extra_report", {}),
        "predictions": writer.index,
    }
    summary = summarise(per_seed, evaluation.metrics_reported(), args.english)
    return write_report(args.out, args.command, summary, evaluation.metrics_reported(), config, len(per_seed))


def main(argv=None) -> int:
    logging.basicConfig(format="%(asctime)s | %(levelname)s | %(name)s | %(message)s",
                        level=os.environ.get("LOGLEVEL", "INFO").upper(), stream=sys.stdout)
    parser = build_parser()
    args = parser.parse_args(argv)
    validate(args, parser)
    if args.command == "compare":
        from .compare import run_compare

        try:
            print(run_compare(args))
        except InputError as err:
            print(f"xsl-eval compare: error: {err}", file=sys.stderr)
            return 2
        return 0
    try:
        table = run(args)
    except InputError as err:
        print(f"xsl-eval {args.command}: error: {err}", file=sys.stderr)
        return 2
    print()
    print(table)
    print(f"\nresults: {os.path.join(args.out, 'results.md')}, {os.path.join(args.out, 'results.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
