"""``xsl-eval qa``: extractive QA (MLQA, XQuAD in SQuAD JSON), F1 / EM per language.

Windows follow BERT's SQuAD recipe: ``<s> question </s> passage-window </s>``, the
question cut to ``--max-query-length`` pieces, windows ``--doc-stride`` pieces apart;
a window that does not contain the whole answer is labelled with the ``<s>`` position.
Decoding takes, over all windows of a question, the span with the highest
start + end logit such that start <= end and length <= ``--max-answer-length``
pieces, and returns the passage text between its characters. F1 / EM use MLQA's
language-specific normalisation for MLQA files and SQuAD v1.1's for XQuAD (as XTREME).

``--que-mode`` (CLISM, Chen et al. 2022, Eq. 10): windows ``<s> question [QUE] </s>
passage </s>`` answered by the pointer head pretrained by ``xsl_clism``
(``clism_pointer``) from the ``[QUE]`` state. A checkpoint whose dictionary lacks
``[QUE]`` gets it appended (its embedding row starts at the mean embedding) and a fresh
head. ``--few-shot K`` fine-tunes on K questions sampled from the training file with
each ``--seeds`` value as the sampling seed (the paper's Table 3 draws 5 samples of
64..1024 examples); choose ``--epochs`` for the number of updates (K=256, batch 32:
25 epochs are about the paper's 200 steps).
"""
import logging
import os
import random
import shutil
from typing import Dict, List

import torch

from preprocess import InputError

from ..criterions.xsl_span_qa import span_logits
from ..data.dictionary import QUE_SYMBOL, parse_symbol_list
from ..data.features import write_sequences
from ..modules.heads import QUERY_POINTER_HEAD
from .finetune import DEV, finetune_and_score, iterate_batches
from .metrics import squad_scores
from .readers import QAExample, discover_language_files, read_squad_json, repair_answer_offsets

logger = logging.getLogger(__name__)

HEAD = "span_qa"


class QAEvaluation:
    layout = "mlqa"

    def __init__(self, args, pretrained, text_encoder, workdir):
        self.args, self.pretrained, self.text_encoder = args, pretrained, text_encoder
        self.data_dir = os.path.join(workdir, "data")
        self.eval_examples: Dict[str, List[QAExample]] = {}
        self.eval_windows: Dict[str, List[dict]] = {}
        self.normalisation: Dict[str, str] = {}  # language -> MLQA language rules, or None for SQuAD
        self.extra_report = {"normalisation": self.normalisation}
        self.predictions, self.gold = {}, {}
        self.que_mode = getattr(args, "que_mode", False)
        self.head_name, self.que_idx = HEAD, None
        self.strides_shortened = 0  # questions whose windows hold fewer than --doc-stride passage pieces
        if self.que_mode:
            symbols = parse_symbol_list(pretrained.extra_special_symbols)
            if QUE_SYMBOL not in symbols:
                logger.warning("%s has no %s: appending it (mean embedding) and a fresh pointer head",
                               pretrained.checkpoint, QUE_SYMBOL)
                pretrained.extra_special_symbols = ",".join(symbols + [QUE_SYMBOL])
            self.head_name = QUERY_POINTER_HEAD
            self.que_idx = pretrained.dictionary().index(QUE_SYMBOL)

    prediction_format = "squad"

    @staticmethod
    def metrics_reported():
        return ["f1", "exact_match"]

    @staticmethod
    def metric_definitions():
        return {"f1": "SQuAD v1.1 / MLQA token F1, best over the gold answers (XTREME: xquad, mlqa)",
                "exact_match": "SQuAD v1.1 / MLQA exact match"}

    def windows(self, example: QAExample, with_answer: bool):
        """Token windows of one question; each a dict with tokens, answer span and offsets."""
        dictionary = self.text_encoder.dictionary
        question = self.text_encoder.encode(example.question)[: self.args.max_query_length]
        context_ids, char_spans = self.text_encoder.encode_with_offsets(example.context)
        if self.que_mode:
            question = question + [self.que_idx]
        budget = self.args.max_seq_length - len(question) - 3
        if budget <= 0:
            raise InputError(f"--max-seq-length {self.args.max_seq_length} leaves no room for the passage "
                             f"after a {len(question)}-piece question; lower --max-query-length")
        answer_tokens = None
        if with_answer:
            answer_tokens = self._answer_token_span(example, char_spans)
            if answer_tokens is None:
                return []
        prefix = [dictionary.bos(), *question, dictionary.eos()]
        # a stride longer than the window's passage would skip the pieces between windows
        stride = min(self.args.doc_stride, budget)
        if stride < self.args.doc_stride and len(context_ids) > budget:
            self.strides_shortened += 1
        windows, begin = [], 0
        while True:
            end = min(begin + budget, len(context_ids))
            span = [0, 0]
            if answer_tokens and begin <= answer_tokens[0] and answer_tokens[1] < end:
                span = [answer_tokens[0] - begin + len(prefix), answer_tokens[1] - begin + len(prefix)]
            windows.append({
                "tokens": prefix + context_ids[begin:end] + [dictionary.eos()],
                "span": span,
                "context_offset": len(prefix),
                "char_spans": char_spans[begin:end],
            })
            if end >= len(context_ids):
                return windows
            begin += stride

    @staticmethod
    def _answer_token_span(example: QAExample, char_spans):
        start_char = example.answer_starts[0]
        end_char = start_char + len(example.answers[0])
        covering = [i for i, (b, e) in enumerate(char_spans) if e > start_char and b < end_char]
        if not covering:
            return None
        return covering[0], covering[-1]

    def _write(self, split, windows):
        write_sequences(os.path.join(self.data_dir, f"{split}.tokens"), [w["tokens"] for w in windows])
        write_sequences(os.path.join(self.data_dir, f"{split}.spans"), [w["span"] for w in windows])

    def prepare(self):
        args = self.args
        os.makedirs(self.data_dir, exist_ok=True)
        shutil.copy(self.pretrained.dict_path, os.path.join(self.data_dir, "dict.txt"))
        train = self.locatable_training_questions(read_squad_json(args.train)[: args.max_train_examples])
        self.few_shot_pool = train  # --few-shot samples from these, per seed (few_shot_split)
        if getattr(args, "few_shot", 0) > len(train):
            raise InputError(f"{args.train}: --few-shot {args.few_shot} exceeds its {len(train)} questions")
        train_windows, unlocatable = [], 0
        for example in train:
            windows = self.windows(example, with_answer=True)
            unlocatable += not windows
            train_windows.extend(windows)
        if unlocatable:
            logger.warning("%s: %d questions dropped (their answer covers no piece of the passage, e.g. an "
                           "empty answer text)", args.train, unlocatable)
        if not train_windows:
            raise InputError(f"{args.train}: no training question left")
        self._write("train", train_windows)
        self.num_train = len(train_windows)
        self.extra_report["train_questions"] = len(train) - unlocatable
        self.extra_report["train_windows"] = len(train_windows)
        counts = {}
        files = {lang: path for lang, path in discover_language_files(args.eval_dir, self.layout, args.split).items()
                 if not args.languages or lang in args.languages}
        if getattr(args, "dev", None):
            files[DEV] = args.dev
        for lang, path in files.items():
            examples = read_squad_json(path)[: args.max_eval_examples]
            if lang == DEV and not examples:
                raise InputError(f"--dev {args.dev}: no questions")
            windows = []
            for index, example in enumerate(examples):
                for window in self.windows(example, with_answer=False):
                    window["example"] = index
                    windows.append(window)
            self._write(f"test_{lang}", windows)
            self.eval_examples[lang], self.eval_windows[lang] = examples, windows
            # XTREME scores XQuAD with the SQuAD v1.1 script; MLQA with its own per-language one
            name = os.path.basename(str(path))
            self.normalisation[lang] = None if name.startswith("xquad") else args.english if lang == DEV else lang
            if lang != DEV:
                self.gold[lang] = {ex.qid: list(ex.answers) for ex in examples}
                counts[lang] = len(examples)
        if self.strides_shortened:
            logger.warning("%d questions: their windows hold fewer than --doc-stride %d passage pieces; "
                           "consecutive windows start that many pieces apart instead (no piece skipped)",
                           self.strides_shortened, args.doc_stride)
        return counts

    def locatable_training_questions(self, train: List[QAExample]) -> List[QAExample]:
        """Training questions whose answer span is where its text is: an ``answer_start`` a
        few characters off is moved to the text, one whose text is not nearby is dropped
        (training on it would teach the wrong span); both are counted in the log and in
        ``results.json`` (``train_answer_offsets``)."""
        path = self.args.train
        kept, fixed, dropped = repair_answer_offsets(train, path)
        if fixed:
            logger.warning("%s: %d answer_start offsets did not point at their answer text and were moved to "
                           "the text found within 64 characters (first: %s)", path, len(fixed), fixed[0])
        if dropped:
            logger.warning("%s: %d questions dropped: answer_start does not point at the answer text and the "
                           "text is not within 64 characters (first: %s)", path, len(dropped), dropped[0])
        self.extra_report["train_answer_offsets"] = {"fixed": len(fixed), "dropped": len(dropped)}
        if not kept:
            raise InputError(f"{path}: none of its {len(train)} training questions has an answer_start that "
                             f"points at (or near) its answer text (first: {dropped[0]})")
        return kept

    def task_args(self):
        return (["--task", "xsl_span_qa", "--criterion", "xsl_span_qa", "--head-name", self.head_name]
                + (["--que-mode"] if self.que_mode else []))

    def few_shot_split(self, seed) -> List[str]:
        """Write ``train_k{K}_seed{seed}``: K questions sampled with ``seed``; returns the
        fairseq arguments that train on it."""
        sample = random.Random(seed).sample(self.few_shot_pool, self.args.few_shot)
        windows = [w for example in sample for w in self.windows(example, with_answer=True)]
        split = f"train_k{self.args.few_shot}_seed{seed}"
        self._write(split, windows)
        self.num_train = len(windows)
        self.extra_report.setdefault("few_shot_windows", {})[str(seed)] = len(windows)
        return ["--train-subset", split]

    def best_span(self, start_logits, end_logits):
        """(score, start, end) maximising start + end with end - start < max answer length."""
        length = start_logits.numel()
        scores = start_logits[:, None] + end_logits[None, :]
        allowed = torch.ones(length, length, dtype=torch.bool).triu()
        allowed &= ~torch.ones(length, length, dtype=torch.bool).triu(self.args.max_answer_length)
        scores = scores.masked_fill(~allowed, float("-inf"))
        flat = int(scores.argmax())
        return float(scores.view(-1)[flat]), flat // length, flat % length

    def score(self, model, task, lang):
        """``({"f1", "exact_match", "examples"}, {question id: predicted answer})``."""
        pad = task.source_dictionary.pad()
        examples, windows = self.eval_examples[lang], self.eval_windows[lang]
        best = {}  # example index -> (score, char begin, char end)
        with torch.inference_mode():
            for sample in iterate_batches(task, f"test_{lang}", max_sentences=32):
                starts, ends = span_logits(model, sample["net_input"], self.head_name, pad, self.que_idx)
                for row, window_id in enumerate(sample["id"].tolist()):
                    window = windows[window_id]
                    offset, size = window["context_offset"], len(window["char_spans"])
                    if size == 0:
                        continue
                    score, s, e = self.best_span(starts[row, offset:offset + size], ends[row, offset:offset + size])
                    if window["example"] not in best or score > best[window["example"]][0]:
                        best[window["example"]] = (score, window["char_spans"][s][0], window["char_spans"][e][1])
        predictions = {ex.qid: (ex.context[best[i][1]:best[i][2]].strip() if i in best else "")
                       for i, ex in enumerate(examples)}
        scores = squad_scores(predictions, examples, lang=self.normalisation[lang])
        return {**scores, "examples": len(examples)}, predictions

    def run_seed(self, seed, finetune_config, save_dir, tensorboard_dir, languages):
        task_args = self.task_args() + (self.few_shot_split(seed) if getattr(self.args, "few_shot", 0) else [])
        return finetune_and_score(self, seed, finetune_config, save_dir, tensorboard_dir, languages, task_args)
