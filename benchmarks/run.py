"""Every objective's cost in one run: words per second and peak memory of each registered
objective against fairseq's own ``masked_lm`` on the same model and the same batches, with its
pass-count bound; and the miners' pairs per second against eflomal alone on the same pairs.

    python benchmarks/run.py                       # all, CPU, 1 thread: about 10 min on an idle 2-core machine
    python benchmarks/run.py --quick               # smaller data and fewer updates: a 1-2 minute smoke
    python benchmarks/run.py --device cuda
    python benchmarks/run.py --only xsl_clism,xsl_mlctl,eflomal,clism-spans --out-dir work/bench

Writes ``results.json`` and ``results.md`` (``--out-dir``, default ``benchmarks/``). Every figure is
marked with the load average at the time it was taken: on a shared machine wall time moves with
the other jobs, which is why the bound check uses CPU time on CPU (below).

**Data** (built once, from ``--data``, default ``../shared/data``): the first ``--pairs`` English-German
pairs of WMT newstest 2018, a joint sentencepiece model of them (``--vocab-size``) and, from the same
pairs, the mono and per-language MLM data, ``xsl-prep clism-spans`` + ``clism-binarize`` (CLISM),
``mlctl-wps`` with the MUSE en-de dictionary (ML-CTL) and ``trelm-align`` (TreLM); English MLQA dev (span QA),
UNER en_ewt dev (token labelling) and XNLI dev-en (sentence prediction, SALT) prepared as ``xsl-eval`` writes
them.

**Training updates.** Each objective is built as ``fairseq-train`` builds it (its task, ``--arch``
``xsl_roberta_tiny`` or ``xsl_trelm_tiny`` for TreLM, its criterion's defaults, fairseq's Adam) and runs
``--warmup`` untimed then ``--updates`` timed updates (criterion forward, backward of loss / sample size,
Adam step) on the task's own batches of ``--batch-size`` examples (``get_batch_iterator``, seed 1). Its
**baseline** is fairseq's ``masked_lm`` criterion on the same model (TreLM: the ``xsl_roberta`` backbone
without the TRILayer) and the *same batches* turned into masked-LM batches of the same words (the
objective's clean token rows, masked 15% / 80-10-10; the MLM tasks' own batches as they are). "Words" are
the same tokens for both (CLISM: ``<s> s </s> t </s>``; ML-CTL: x and y; TreLM: each pair's English and German
sentence), so the words/s ratio is the inverse time ratio. The ``masked_lm`` row is fairseq's own
``--task masked_lm --criterion masked_lm`` on the mono data, for reference.

**Pass-count bound**: the encoder work of one update of the objective over that of masked LM on the same
words, counting one forward + backward over a token as 1 and a forward without gradient as 1/3 (backward
~ 2 x forward); output heads are not counted, so masked LM's vocabulary projection over 15% of the tokens
makes the bound a little generous for the fine-tuning objectives and a little tight for those that predict
more tokens. The measured CPU-time ratio (wall time on CUDA) is "within 10%" when it is at most 1.1 x the
bound. The rule of each objective is in ``BOUND_RULES``.

**Memory**: each measurement runs in its own process, one after the other, all with ``--threads`` threads:
the process's peak resident set over the updates (the peak is reset just before them through
``/proc/self/clear_refs``, so set-up work such as SALT's offline copy does not count) and its growth over
the resident size before them; on CUDA also ``torch.cuda.max_memory_allocated``.

**Miners** (each its own process, on the same ``--pairs`` pairs): ``xsl-prep clism-spans`` (spaCy NER,
target words, eflomal, projection), the ML-CTL word-positioned sample miner (``mlctl-wps``: dictionary
read, matching, sentencepiece), and eflomal alone (both directions + grow-diag-final-and, whitespace words).
"""
import argparse
import contextlib
import json
import os
import shlex
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Callable, List, Optional

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(BENCH_DIR)
sys.path[:0] = [BENCH_DIR, REPO_ROOT]

import report  # noqa: E402  (benchmarks/ is on the path: run as a script)

PAIRS_EN = "wmt_newstest/deu-eng/newstest2018.eng"
PAIRS_DE = "wmt_newstest/deu-eng/newstest2018.deu"
MUSE_EN_DE = "muse_dicts/en-de.dict"
QA_TRAIN = "mlqa/dev/dev-context-en-question-en.json"
NER_TRAIN = "uner/en_ewt/en_ewt-ud-dev.iob2"
PAIR_TRAIN = "xnli/dev-en.tsv"
FORWARD_ONLY = 1 / 3  # a forward pass without gradient, in units of forward + backward

BOUND_RULES = {
    "masked_lm": "the reference",
    "xsl_masked_lm": "1 (fairseq's masked-LM loss plus an accuracy count)",
    "xsl_meta_mlm": "1 (masked LM on the schedule's per-language batches)",
    "xsl_clism": "(X + source) / pair tokens: one pass over X = <s> masked-source </s> target </s> and one over "
                 "the unmasked <s> source </s> (CACR), per token of <s> s </s> t </s> (padded tokens on CUDA, "
                 "where the two are stacked)",
    "xsl_mlctl": "2: x, y and their masked copies in one stacked call, twice masked LM's rows",
    "xsl_span_qa": "1 (one pass over the window)",
    "xsl_token_labeling": "1 (one pass over the sentence)",
    "sentence_prediction": "1 (one pass over the pair)",
    "xsl_salt_online": "2 + 1/3: the clean and augmented rows (forward + backward each) and one MLM forward "
                       "without gradient to predict the substitutes",
    "xsl_salt_offline": "2: the clean and the offline code-switched rows",
    "xsl_trelm_cdlm": "(L + 1) / L with lengths: the CdLM example runs L/2 layers at English length and the TRILayer "
                      "+ L/2 layers at German length, the MLM example L + 1 layers, against L layers over both "
                      "sentences",
}


# ------------------------------------------------------------------------------------------------ objectives


@dataclass
class Objective:
    """How to build one objective as fairseq-train does, and how its batches map onto masked LM."""
    data: str  # key of DATA_BUILDERS
    flags: Callable[[dict], List[str]]  # fairseq flags after DATA (given the data builder's info)
    arch: str = "xsl_roberta_tiny"
    to_masked_lm: Optional[Callable] = None  # (sample, context) -> masked-LM batch of the same words
    words: Optional[Callable] = None  # (sample, context) -> words of the batch (default: sample["ntokens"])
    work: Optional[Callable] = None  # (sample, context, words) -> encoder work in masked-LM word units
    offline_salt_copy: bool = False


def _rows(tokens, pad):
    """Non-pad token rows of a right-padded batch."""
    return [row[row.ne(pad)].tolist() for row in tokens]


def _masked(rows, context):
    return report.bert_masked_batch(rows, context.dictionary, context.rng)


def _input_rows_to_masked_lm(sample, context):
    return _masked(_rows(sample["net_input"]["src_tokens"], context.pad), context)


def _clism_pairs(sample, context):
    from bench_clism import pair_mlm_batch

    return pair_mlm_batch(context.dataset, sample["id"].tolist(), context.dictionary, context.rng.randint(2**31))


def _clism_work(sample, context, words):
    x, source = sample["net_input"]["src_tokens"], sample["source_net_input"]["src_tokens"]
    if context.device == "cuda":  # stacked into one call (--source-pass-batching auto): padded tokens count
        pair = _clism_pairs(sample, context)["net_input"]["src_tokens"]
        return words * (x.numel() + x.size(0) * max(x.size(1), source.size(1))) / pair.numel()
    return int(x.ne(context.pad).sum() + source.ne(context.pad).sum())


def _mlctl_to_masked_lm(sample, context):
    from bench_mlctl import masked_lm_sample

    return masked_lm_sample(sample, context.pad)


def _trelm_rows(sample, pad):
    """Clean English (the CdLM input) and German (the MLM example, masks undone) rows of a batch."""
    mlm = sample["mlm"]
    german = mlm["net_input"]["src_tokens"].where(mlm["target"].eq(pad), mlm["target"])
    return _rows(sample["cdlm"]["net_input"]["src_tokens"], pad) + _rows(german, pad)


def _trelm_work(sample, context, words):
    layers = context.backbone_layers
    below = layers // 2
    english = int(sample["cdlm"]["net_input"]["src_tokens"].ne(context.pad).sum())
    german_cdlm = int((~sample["cdlm"]["net_input"]["target_padding_mask"]).sum())
    german_mlm = int(sample["mlm"]["net_input"]["src_tokens"].ne(context.pad).sum())
    return (below * english + (layers - below + 1) * german_cdlm + (layers + 1) * german_mlm) / layers


def _mlm_data_flags(info):
    return ["--sample-break-mode", "complete", "--tokens-per-sample", "128"]


def _pair_flags(criterion):
    def flags(info):
        return ["--task", "xsl_sentence_prediction", "--num-classes", str(info["num_classes"]), "--init-token", "0",
                "--separator-token", "2", "--max-positions", "128", *criterion]
    return flags


OBJECTIVES = {
    "masked_lm": Objective("mono", lambda info: ["--task", "masked_lm", "--criterion", "masked_lm",
                                                 *_mlm_data_flags(info)]),
    "xsl_masked_lm": Objective("mono", lambda info: ["--task", "xsl_masked_lm", "--criterion", "xsl_masked_lm",
                                                     *_mlm_data_flags(info)]),
    "xsl_meta_mlm": Objective("meta", lambda info: [
        "--task", "xsl_meta_mlm", "--criterion", "xsl_meta_mlm", "--meta-phase1-language", "en",
        "--meta-phase1-updates", str(info["phase1_updates"]), "--max-update", str(info["max_update"]),
        *_mlm_data_flags(info)]),
    "xsl_clism": Objective("clism", lambda info: ["--task", "xsl_clism", "--criterion", "xsl_clism"],
                           to_masked_lm=_clism_pairs, words=lambda s, c: int(_clism_pairs(s, c)["ntokens"]),
                           work=_clism_work),
    "xsl_mlctl": Objective("mlctl", lambda info: ["--task", "xsl_mlctl", "--criterion", "xsl_mlctl"],
                           to_masked_lm=_mlctl_to_masked_lm, work=lambda s, c, words: 2 * words),
    "xsl_span_qa": Objective("qa", lambda info: ["--task", "xsl_span_qa", "--criterion", "xsl_span_qa",
                                                            "--max-positions", "128"],
                             to_masked_lm=_input_rows_to_masked_lm),
    "xsl_token_labeling": Objective("ner", lambda info: ["--task", "xsl_token_labeling",
                                                         "--criterion", "xsl_token_labeling", "--max-positions", "128"],
                                    to_masked_lm=_input_rows_to_masked_lm),
    "sentence_prediction": Objective("pairs", _pair_flags(["--criterion", "sentence_prediction"]),
                                     to_masked_lm=_input_rows_to_masked_lm),
    "xsl_salt_online": Objective("pairs", _pair_flags(["--criterion", "xsl_salt"]),
                                 to_masked_lm=_input_rows_to_masked_lm,
                                 work=lambda s, c, words: (2 + FORWARD_ONLY) * words),
    "xsl_salt_offline": Objective("pairs", _pair_flags(["--criterion", "xsl_salt", "--salt-substitutes", "offline",
                                                        "--salt-mix-prob", "0"]),
                                  to_masked_lm=_input_rows_to_masked_lm, work=lambda s, c, words: 2 * words,
                                  offline_salt_copy=True),
    "xsl_trelm_cdlm": Objective("trelm", lambda info: ["--task", "xsl_trelm_cdlm", "--criterion", "xsl_trelm_cdlm",
                                                       "--trelm-stage", "upper", "--max-positions", "128"],
                                arch="xsl_trelm_tiny",
                                to_masked_lm=lambda s, c: _masked(_trelm_rows(s, c.pad), c), work=_trelm_work),
}
MINERS = ("eflomal", "clism-spans", "mlctl-wps")


# ------------------------------------------------------------------------------------------------ data


def _head(path, n, out):
    from bench_word_tokenize import head

    return head(path, n, out)


def build_pairs(root, args):
    en, de = os.path.join(root, "pairs.en"), os.path.join(root, "pairs.de")
    if not os.path.isfile(de):
        _head(os.path.join(args.data, PAIRS_EN), args.pairs, en)
        _head(os.path.join(args.data, PAIRS_DE), args.pairs, de)
    return en, de


def build_vocabulary(root, args):
    from preprocess.spm import train_sentencepiece

    spm, dictionary = os.path.join(root, "spm.model"), os.path.join(root, "dict.txt")
    if not os.path.isfile(dictionary):
        train_sentencepiece(list(build_pairs(root, args)), os.path.join(root, "spm"), vocab_size=args.vocab_size,
                            threads=1)
    return spm, dictionary


def mine_clism_spans(root, args) -> dict:
    from preprocess.clism_spans import mine_spans

    en, de = build_pairs(root, args)
    output = os.path.join(root, "clism-spans.jsonl")
    started = time.perf_counter()
    stats = mine_spans(en, de, output, tgt_lang="de")
    seconds = time.perf_counter() - started
    return {"pairs": stats.pairs_read, "pairs_kept": stats.pairs_kept, "spans_kept": stats.spans_kept,
            "seconds": round(seconds, 3), "pairs_per_second": stats.pairs_read / seconds,
            "stage_seconds": {k: round(v, 3) for k, v in stats.seconds.items()}}


def mine_mlctl_wps(root, args) -> dict:
    from preprocess.mlctl_wps import mine_wps

    en, de = build_pairs(root, args)
    spm, dictionary = build_vocabulary(root, args)
    started = time.perf_counter()
    mined = mine_wps([("de", en, de)], {"de": os.path.join(args.data, MUSE_EN_DE)}, spm, dictionary,
                     os.path.join(root, "mlctl"))
    seconds = time.perf_counter() - started
    pairs = mined["counts"]["pairs_seen"]
    return {"pairs": pairs, "samples": mined["counts"]["samples"], "seconds": round(seconds, 3),
            "pairs_per_second": pairs / seconds,
            "mining_loop_pairs_per_second": mined["pairs_per_second"]["de"]}


def align_with_eflomal(root, args) -> dict:
    from preprocess.word_alignment import eflomal_align

    en, de = build_pairs(root, args)
    with open(en, encoding="utf-8") as src, open(de, encoding="utf-8") as tgt:
        pairs = [(s.split(), t.split()) for s, t in zip(src, tgt) if s.strip() and t.strip()]
    started = time.perf_counter()
    links = eflomal_align([s for s, _ in pairs], [t for _, t in pairs], "grow-diag-final-and")
    seconds = time.perf_counter() - started
    return {"pairs": len(pairs), "links": sum(len(x) for x in links), "seconds": round(seconds, 3),
            "pairs_per_second": len(pairs) / seconds}


MINER_FUNCTIONS = {"eflomal": align_with_eflomal, "clism-spans": mine_clism_spans, "mlctl-wps": mine_mlctl_wps}


def data_mono(root, args):
    from preprocess.binarize import binarize_monolingual

    out = os.path.join(root, "mono")
    if not os.path.isfile(os.path.join(out, "train.idx")):
        spm, dictionary = build_vocabulary(root, args)
        binarize_monolingual(list(build_pairs(root, args)), dictionary, out, spm_model=spm)
    return out, {}


def data_meta(root, args):
    from preprocess.binarize import binarize_per_language

    out = os.path.join(root, "multi")
    if not os.path.isdir(os.path.join(out, "de")):
        spm, dictionary = build_vocabulary(root, args)
        en, de = build_pairs(root, args)
        binarize_per_language([f"en={en}", f"de={de}"], dictionary, out, spm_model=spm)
    # the timed updates straddle the switch to phase 2 (both phases' batches)
    total = args.warmup + args.updates
    return out, {"phase1_updates": total // 2, "max_update": total + 1}


def data_clism(root, args):
    from preprocess.clism_binarize import binarize_clism

    out = os.path.join(root, "clism")
    if not os.path.isfile(os.path.join(out, "clism.json")):
        mined = os.path.join(root, "clism-spans.jsonl")
        if not os.path.isfile(mined):
            mine_clism_spans(root, args)
        spm, dictionary = build_vocabulary(root, args)
        binarize_clism([mined], spm, dictionary, out)
    return out, {}


def data_mlctl(root, args):
    out = os.path.join(root, "mlctl")
    if not os.path.isfile(os.path.join(out, "mining.json")):
        mine_mlctl_wps(root, args)
    return out, {}


def data_trelm(root, args):
    from preprocess.trelm_align import align_corpus

    out = os.path.join(root, "trelm")
    if not os.path.isdir(out):
        spm, dictionary = build_vocabulary(root, args)
        en, de = build_pairs(root, args)
        align_corpus(en, de, "en", "de", spm, dictionary, out)
    return out, {}


def _evaluation_args(args, train, eval_dir, **extra):
    """What an xsl-eval subcommand's ``prepare()`` reads, for English training data only."""
    return SimpleNamespace(train=train, eval_dir=eval_dir, split="dev", languages=["en"], max_eval_examples=8,
                           max_train_examples=args.finetune_examples, max_seq_length=128, dev=None,
                           held_out_items=0, salt=None, fairseq_args="", **extra)


def data_qa(root, args):
    from xsl_fairseq.data.dictionary import load_dictionary
    from xsl_fairseq.evaluation.pretrained import TextEncoder
    from xsl_fairseq.evaluation.qa import QAEvaluation

    out = os.path.join(root, "qa")
    if not os.path.isfile(os.path.join(out, "data", "train.tokens.idx")):
        spm, dictionary = build_vocabulary(root, args)
        train = os.path.join(args.data, QA_TRAIN)
        qa_args = _evaluation_args(args, train, os.path.dirname(train), max_query_length=64, doc_stride=64,
                                   max_answer_length=30, few_shot=0, que_mode=False, english="en")
        QAEvaluation(qa_args, SimpleNamespace(dict_path=dictionary), TextEncoder(spm, load_dictionary(dictionary)),
                     out).prepare()
    return os.path.join(out, "data"), {}


def data_ner(root, args):
    from xsl_fairseq.data.dictionary import load_dictionary
    from xsl_fairseq.evaluation.pretrained import TextEncoder
    from xsl_fairseq.evaluation.tagging import NEREvaluation

    out = os.path.join(root, "ner")
    if not os.path.isfile(os.path.join(out, "data", "labels.txt")):
        spm, dictionary = build_vocabulary(root, args)
        train = os.path.join(args.data, NER_TRAIN)
        ner_args = _evaluation_args(args, train, os.path.dirname(train), label_subtokens="first")
        NEREvaluation(ner_args, SimpleNamespace(dict_path=dictionary), TextEncoder(spm, load_dictionary(dictionary)),
                      out).prepare()
    return os.path.join(out, "data"), {}


def data_pairs(root, args):
    from bench_salt import write_data

    out = os.path.join(root, "pairs")
    info_path = os.path.join(out, "bench_info.json")
    if not os.path.isfile(info_path):
        spm, dictionary = build_vocabulary(root, args)
        salt_args = SimpleNamespace(train=os.path.join(args.data, PAIR_TRAIN), held_out_items=0,
                                    max_train_examples=args.finetune_examples, max_seq_length=128, spm=spm,
                                    dict=dictionary)
        num_classes = write_data(salt_args, out)
        with open(info_path, "w", encoding="utf-8") as handle:
            json.dump({"num_classes": num_classes}, handle)
    with open(info_path, encoding="utf-8") as handle:
        return out, json.load(handle)


DATA_BUILDERS = {"mono": data_mono, "meta": data_meta, "clism": data_clism, "mlctl": data_mlctl,
                 "trelm": data_trelm, "qa": data_qa, "ner": data_ner, "pairs": data_pairs}


# ------------------------------------------------------------------------------------------------ workers


@contextlib.contextmanager
def profiled(args, label: str):
    """With ``--profile DIR``: torch.profiler over the updates (warm-up included), its operator table sorted by
    self CPU time written to ``DIR/LABEL.txt`` (the timings of a profiled run carry the profiler's overhead)."""
    if not args.profile:
        yield
        return
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if args.device == "cuda" else [])
    with profile(activities=activities, record_shapes=False) as profiler:
        yield
    os.makedirs(args.profile, exist_ok=True)
    sort = "self_cuda_time_total" if args.device == "cuda" else "self_cpu_time_total"
    with open(os.path.join(args.profile, label + ".txt"), "w", encoding="utf-8") as out:
        out.write(profiler.key_averages().table(sort_by=sort, row_limit=40))


def _training_worker(name: str, role: str, args) -> dict:
    """One objective (``role`` "objective") or its masked-LM baseline ("masked_lm"), timed in this process."""
    import numpy as np
    import torch
    from fairseq import options, tasks, utils
    from fairseq.criterions.masked_lm import MaskedLmConfig, MaskedLmLoss
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf
    from fairseq.optim.adam import Adam

    torch.set_num_threads(args.threads)
    spec = OBJECTIVES[name]
    data_dir, info = DATA_BUILDERS[spec.data](args.work_dir, args)
    save_dir = tempfile.mkdtemp(prefix="bench_run_")
    flags = [data_dir, "--user-dir", os.path.join(REPO_ROOT, "xsl_fairseq"), "--arch", spec.arch,
             "--seed", str(args.seed), "--batch-size", str(args.batch_size), "--save-dir", save_dir,
             "--required-batch-size-multiple", "1", *spec.flags(info), *shlex.split(args.model_args)]
    if args.device == "cpu":
        flags.append("--cpu")
    parsed = options.parse_args_and_arch(options.get_training_parser(), flags)
    cfg = convert_namespace_to_omegaconf(parsed)
    task = tasks.setup_task(cfg.task)
    torch.manual_seed(args.seed)
    model = task.build_model(cfg.model)
    copy_seconds = None
    if spec.offline_salt_copy:  # written once before training, from the initial model (not timed, not in the peak)
        from xsl_fairseq.data.salt_augment import write_salt_augmented_copy

        started = time.perf_counter()
        task.cfg.salt_augmented_data = os.path.join(save_dir, "salt_copy")
        write_salt_augmented_copy(model, task.source_dictionary, data_dir, task.cfg.salt_augmented_data,
                                  batch_size=args.batch_size, seed=args.seed)
        copy_seconds = round(time.perf_counter() - started, 3)
    task.load_dataset("train")
    dataset = task.dataset("train")
    backbone_layers = len(model.encoder.sentence_encoder.layers)
    if role == "masked_lm":
        if spec.arch.startswith("xsl_trelm"):  # the same backbone without the TRILayer
            from xsl_fairseq.models.xsl_roberta import XslRobertaModel

            torch.manual_seed(args.seed)
            model = XslRobertaModel.build_model(parsed, task)
        criterion = MaskedLmLoss(MaskedLmConfig(tpu=False), task)
    else:
        criterion = task.build_criterion(cfg.criterion)
    model = model.to(args.device).train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = Adam(trainable, lr=1e-5, betas=(0.9, 0.98), eps=1e-6, weight_decay=0.01)
    context = SimpleNamespace(dictionary=task.source_dictionary, pad=task.source_dictionary.pad(), dataset=dataset,
                              rng=np.random.RandomState(args.seed), device=args.device,
                              backbone_layers=backbone_layers)
    iterator = task.get_batch_iterator(
        dataset=dataset, max_sentences=args.batch_size, ignore_invalid_inputs=True, seed=args.seed,
        max_positions=utils.resolve_max_positions(task.max_positions(), model.max_positions()),
        required_batch_size_multiple=1, epoch=1).next_epoch_itr(shuffle=True)

    words, work = [], []

    def batches():  # the task's batches, each one's words (and the objective's encoder work) recorded
        for sample in iterator:
            count = spec.words(sample, context) if spec.words else int(sample["ntokens"])
            words.append(count)
            if role == "objective":
                work.append(spec.work(sample, context, count) if spec.work else count)
            yield sample

    prepare = None
    if role == "masked_lm" and spec.to_masked_lm:
        prepare = lambda sample: spec.to_masked_lm(sample, context)  # noqa: E731
    report.reset_peak_resident()
    load_before = os.getloadavg()
    with profiled(args, f"{name}-{role}"):
        timed = report.time_batches(criterion, model, optimizer, batches(), args.warmup, args.updates, args.device,
                                    prepare=prepare)
    timed_words = words[args.warmup:args.warmup + args.updates]
    result = {
        "objective": name, "role": role, "flags": flags[1:], "device": args.device, "threads": torch.get_num_threads(),
        "seconds_per_update": statistics.mean(timed["seconds"]), "seconds_per_update_each": timed["seconds"],
        "cpu_seconds_per_update": statistics.mean(timed["cpu_seconds"]),
        "cpu_seconds_per_update_each": timed["cpu_seconds"],
        "words_per_update": statistics.mean(timed_words),
        "words_per_second": sum(timed_words) / sum(timed["seconds"]),
        "resident_before_updates_mib": round(timed["resident_before"], 1),
        "update_peak_resident_mib": round(report.proc_status_mib("VmHWM") or 0.0, 1),
        "process_peak_resident_mib": round(report.peak_resident_mib(), 1),
        "loss_per_update": timed["losses"], "parameters": sum(p.numel() for p in model.parameters()),
        "vocabulary": len(task.source_dictionary), "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
    }
    result["update_peak_growth_mib"] = round(result["update_peak_resident_mib"] - result["resident_before_updates_mib"], 1)
    if role == "objective":
        result["pass_count_bound"] = sum(work[args.warmup:args.warmup + args.updates]) / sum(timed_words)
    if copy_seconds is not None:
        result["offline_copy_seconds"] = copy_seconds
    if args.device == "cuda":
        result["cuda_max_memory_allocated_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return result


def _miner_worker(name: str, args) -> dict:
    load_before = os.getloadavg()
    result = MINER_FUNCTIONS[name](args.work_dir, args)
    return {"miner": name, **result, "load_average_before": [round(x, 2) for x in load_before],
            "load_average_after": [round(x, 2) for x in os.getloadavg()]}


def run_worker(worker: str, args) -> dict:
    if worker in MINERS:
        return _miner_worker(worker, args)
    name, role = worker.split(":")
    return _training_worker(name, role, args)


# ------------------------------------------------------------------------------------------------ the run


def measure(worker: str, args, argv) -> dict:
    """``worker`` in a fresh process (report.run_in_worker); a failure is recorded, not fatal."""
    print(f"[{time.strftime('%H:%M:%S')} load {os.getloadavg()[0]:.2f}] {worker}", flush=True)
    try:
        return report.run_in_worker(__file__, worker, [*argv, "--work-dir", args.work_dir])
    except SystemExit as failure:
        print(failure, file=sys.stderr, flush=True)
        return {"error": str(failure)[-2000:]}


def paired_ratio(objective, baseline) -> float:
    """Median over the timed updates of objective time / masked-LM time on the same batch (robust to the
    odd update that another process on a shared machine slowed down)."""
    return statistics.median(a / b for a, b in zip(objective, baseline))


def summarise(name, measured, baseline, device) -> dict:
    """The row of one objective: words/s, memory and the bound check against its masked-LM baseline."""
    row = {"objective": measured, "masked_lm": baseline, "bound_rule": BOUND_RULES[name]}
    if "error" in measured or (baseline is not None and "error" in baseline):
        return row
    row["words_per_second"] = round(measured["words_per_second"], 1)
    row["update_peak_growth_mib"] = measured["update_peak_growth_mib"]
    row["load_average"] = measured["load_average_before"][0]
    if baseline is None:
        return row
    # CPU time is the work done (1 thread): on a shared machine other jobs stretch wall time, not it
    key = "seconds_per_update_each" if device == "cuda" else "cpu_seconds_per_update_each"
    ratio = paired_ratio(measured[key], baseline[key])
    bound = measured["pass_count_bound"]
    row.update({
        "masked_lm_words_per_second": round(baseline["words_per_second"], 1),
        "masked_lm_update_peak_growth_mib": baseline["update_peak_growth_mib"],
        "same_words": measured["words_per_update"] == baseline["words_per_update"],
        "time_ratio": round(paired_ratio(measured["seconds_per_update_each"], baseline["seconds_per_update_each"]), 3),
        "cpu_time_ratio": round(paired_ratio(measured["cpu_seconds_per_update_each"],
                                             baseline["cpu_seconds_per_update_each"]), 3),
        "ratio_checked": "wall time" if device == "cuda" else "CPU time",
        "pass_count_bound": round(bound, 3),
        "ratio_over_bound": round(ratio / bound, 3),
        "within_10pct_of_bound": ratio <= 1.1 * bound,
        "peak_growth_ratio": round(measured["update_peak_growth_mib"] / max(baseline["update_peak_growth_mib"], 1.0), 3),
        "load_average": [measured["load_average_before"][0], baseline["load_average_before"][0]],
    })
    return row


def markdown(results) -> str:
    s = results["settings"]
    lines = [f"Measured {results['finished']} by `{results['command']}`: {s['device']}, {s['threads']} thread(s), "
             f"batch {s['batch_size']}, {s['warmup']} warm-up + {s['updates']} timed updates, "
             f"{s['pairs']} en-de pairs, vocabulary {s['vocab_size']}; load average "
             f"{results['load_average_before'][0]:.2f} at the start, {results['load_average_after'][0]:.2f} at the end "
             f"({results['environment']['cpu_count']} CPUs).", "",
             "| objective | words/s | masked_lm words/s (same batches) | ratio (wall / CPU) | pass-count bound "
             "| ratio / bound | within 10% | peak growth MiB (vs masked_lm) | load |",
             "|---|---:|---:|---:|---:|---:|---|---:|---|"]
    for name, row in results["objectives"].items():
        if "words_per_second" not in row:
            lines.append(f"| {name} | failed: see results.json | | | | | | | |")
        elif "time_ratio" not in row:
            lines.append(f"| {name} | {row['words_per_second']:.0f} | (reference) | | | | | "
                         f"{row['update_peak_growth_mib']:.0f} | {row['load_average']:.2f} |")
        else:
            lines.append(
                f"| {name} | {row['words_per_second']:.0f} | {row['masked_lm_words_per_second']:.0f} "
                f"| {row['time_ratio']:.2f} / {row['cpu_time_ratio']:.2f} | {row['pass_count_bound']:.2f} "
                f"| {row['ratio_over_bound']:.2f} | {'yes' if row['within_10pct_of_bound'] else '**no**'} "
                f"| {row['update_peak_growth_mib']:.0f} ({row['peak_growth_ratio']:.2f}x) "
                f"| {row['load_average'][0]:.2f} / {row['load_average'][1]:.2f} |")
    if results["miners"]:
        lines += ["", "| miner | pairs | pairs/s | vs eflomal alone | seconds | load |", "|---|---:|---:|---:|---:|---|"]
        eflomal = results["miners"].get("eflomal", {}).get("pairs_per_second")
        for name, row in results["miners"].items():
            if "error" in row:
                lines.append(f"| {name} | failed: see results.json | | | | |")
                continue
            versus = f"{row['pairs_per_second'] / eflomal:.2f}x" if eflomal else ""
            lines.append(f"| {name} | {row['pairs']} | {row['pairs_per_second']:.0f} | {versus} | {row['seconds']:.1f} "
                         f"| {row['load_average_before'][0]:.2f} |")
    lines += ["", "Ratio = objective time / masked-LM time on the same batch, median over the timed updates "
              "(= masked_lm words/s / objective words/s); the bound check uses the "
              + ("wall" if s["device"] == "cuda" else "CPU") + "-time ratio. Bounds:", ""]
    lines += [f"- `{name}`: {BOUND_RULES[name]}" for name in results["objectives"]]
    return "\n".join(lines) + "\n"


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=os.path.join(os.path.dirname(REPO_ROOT), "shared", "data"),
                        help="the shared data folder")
    parser.add_argument("--out-dir", default=BENCH_DIR, help="where results.json and results.md go")
    parser.add_argument("--work-dir", default=None, help="where the prepared data goes (default: a temporary folder)")
    parser.add_argument("--only", default="", help="comma-separated objectives and miners: "
                        + ", ".join([*OBJECTIVES, *MINERS]))
    parser.add_argument("--quick", action="store_true", help="smaller data, batch and update counts (a smoke run)")
    parser.add_argument("--pairs", type=int, default=None, help="en-de pairs for the miners and the pair objectives")
    parser.add_argument("--finetune-examples", type=int, default=None, help="examples of each fine-tuning task")
    parser.add_argument("--vocab-size", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=None, help="examples per update")
    parser.add_argument("--warmup", type=int, default=None)
    parser.add_argument("--updates", type=int, default=None, help="timed updates per measurement")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of every measurement")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--model-args", default="", help="extra model flags, written with '=': --model-args=...")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--profile", default=None, metavar="DIR",
                        help="also write a torch.profiler operator table per measurement to DIR (slows the timings)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    sizes = dict(pairs=(400, 2000), finetune_examples=(200, 800), vocab_size=(1000, 2000), batch_size=(16, 32),
                 warmup=(1, 3), updates=(4, 12))
    for key, (quick, full) in sizes.items():
        if getattr(args, key) is None:
            setattr(args, key, quick if args.quick else full)
    if args.worker:
        print("RESULT " + json.dumps(run_worker(args.worker, args)), flush=True)
        return

    selected = [n for n in args.only.split(",") if n] or [*OBJECTIVES, *MINERS]
    unknown = sorted(set(selected) - set(OBJECTIVES) - set(MINERS))
    if unknown:
        raise SystemExit(f"--only: unknown {', '.join(unknown)}; choose from {', '.join([*OBJECTIVES, *MINERS])}")
    if not os.path.isfile(os.path.join(args.data, PAIRS_EN)):
        raise SystemExit(f"{os.path.join(args.data, PAIRS_EN)}: not found (--data names the shared data folder)")
    temporary = None
    if args.work_dir is None:
        temporary = tempfile.TemporaryDirectory(prefix="bench_run_")
        args.work_dir = temporary.name
    os.makedirs(args.work_dir, exist_ok=True)
    worker_argv = argv  # measure() appends --work-dir (the last one wins)
    started, load_before = time.time(), os.getloadavg()

    miners = {name: measure(name, args, worker_argv) for name in MINERS if name in selected}
    for key in dict.fromkeys(OBJECTIVES[name].data for name in OBJECTIVES if name in selected):
        print(f"[{time.strftime('%H:%M:%S')}] data: {key}", flush=True)
        DATA_BUILDERS[key](args.work_dir, args)  # here, so that no measured process pays for it
    objectives = {}
    for name in OBJECTIVES:
        if name not in selected:
            continue
        measured = measure(f"{name}:objective", args, worker_argv)
        baseline = None if name == "masked_lm" else measure(f"{name}:masked_lm", args, worker_argv)
        objectives[name] = summarise(name, measured, baseline, args.device)
        row = objectives[name]
        if "ratio_over_bound" in row:
            print(f"  {name}: {row['words_per_second']:.0f} words/s vs masked_lm {row['masked_lm_words_per_second']:.0f}"
                  f"; ratio {row['cpu_time_ratio']} (CPU) / {row['time_ratio']} (wall), bound {row['pass_count_bound']}"
                  f", within 10%: {row['within_10pct_of_bound']}", flush=True)
    results = {
        "benchmark": "benchmarks/run.py: every objective against fairseq's masked_lm on the same model and batches; "
                     "the miners against eflomal alone on the same pairs",
        "command": "python benchmarks/run.py " + " ".join(shlex.quote(a) for a in worker_argv),
        "finished": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "wall_seconds": round(time.time() - started, 1),
        "settings": {k: getattr(args, k) for k in ("device", "threads", "batch_size", "warmup", "updates", "pairs",
                                                   "finetune_examples", "vocab_size", "model_args", "seed", "quick")},
        "environment": report.environment(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "objectives": objectives,
        "miners": miners,
    }
    os.makedirs(args.out_dir, exist_ok=True)
    report.write_report(os.path.join(args.out_dir, "results.json"), results)
    table = markdown(results)
    with open(os.path.join(args.out_dir, "results.md"), "w", encoding="utf-8") as out:
        out.write(table)
    print(table)
    if temporary is not None:
        temporary.cleanup()


if __name__ == "__main__":
    main()
