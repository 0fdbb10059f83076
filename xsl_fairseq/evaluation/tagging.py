"""``xsl-eval ner`` and ``xsl-eval pos``: one label per word, sub-token inputs.

Each word is tokenised on its own (sentencepiece adds the word-initial ``▁``, as
XLM-R's tokenizer does for pre-split words). The label is trained and predicted on
the first sub-token of each word (``--label-subtokens all`` also trains the other
sub-tokens with the word's label). Sentences longer than ``--max-seq-length`` are
split into consecutive chunks of whole words, so every word is evaluated. ``--salt online``
fine-tunes with SALT (``xsl_salt_token_labeling``) instead of ``xsl_token_labeling``.

Scores as XTREME's ``evaluate.py`` computes them, with this project's figures beside them:

* NER ``f1``: seqeval entity F1 over every entity type of gold and prediction (XTREME's
  panx). Label sets may differ between the English training data and a test language
  (MasakhaNER has DATE, UNER has none): ``f1_shared_types`` is the F1 on the types both
  use (the ignored types are listed per language in ``results.json``); the headline keeps
  them, so a model that never learned DATE is charged for missing it, and a test set that
  happens to lack a type still counts spurious predictions of it.
* POS ``f1``: seqeval F1 over the UPOS tags (XTREME's udpos, see
  :func:`~xsl_fairseq.evaluation.metrics.seqeval_chunk_counts`); ``accuracy`` per word.
"""
import abc
import logging
import os
import shutil
from typing import List, Tuple

import torch

from preprocess import InputError

from ..criterions.xsl_token_labeling import token_label_logits
from ..data.features import IGNORE_LABEL, write_sequences
from .finetune import DEV, finetune_and_score, iterate_batches
from .metrics import accuracy, ner_f1, pos_f1, shared_entity_types
from .readers import discover_language_files, read_conllu, read_iob2, read_xtreme_pos_tsv

logger = logging.getLogger(__name__)

HEAD = "token_labeling"
Sentence = Tuple[List[str], List[str]]


class TaggingEvaluation(abc.ABC):
    layouts: Tuple[str, ...] = ()
    prediction_format = "tags"

    def __init__(self, args, pretrained, text_encoder, workdir):
        self.args, self.pretrained, self.text_encoder = args, pretrained, text_encoder
        self.data_dir = os.path.join(workdir, "data")
        self.eval_sentences = {}
        self.eval_chunks = {}
        self.extra_report = {}
        self.predictions, self.gold = {}, {}

    # -- reading ---------------------------------------------------------
    @abc.abstractmethod
    def read(self, path, train: bool = False) -> List[Sentence]:
        """(words, tags) of every sentence of ``path`` (``train``: the English training file)."""

    @abc.abstractmethod
    def tag_scores(self, lang: str, predicted: List[List[str]]) -> dict:
        """Metrics of the predicted word tags of ``lang`` against its gold tags."""

    def language_files(self):
        last_error = None
        for layout in self.layouts:
            try:
                files = discover_language_files(self.args.eval_dir, layout, self.args.split)
            except InputError as err:
                last_error = err
                continue
            return {lang: paths if isinstance(paths, list) else [paths] for lang, paths in files.items()
                    if not self.args.languages or lang in self.args.languages}
        raise last_error

    # -- features --------------------------------------------------------
    def chunks(self, words: List[str], word_pieces: List[List[int]]):
        """Consecutive word ranges whose pieces fit ``--max-seq-length`` with <s> and </s>."""
        budget = self.args.max_seq_length - 2
        start, used = 0, 0
        for index, pieces in enumerate(word_pieces):
            if len(pieces) > budget:
                raise InputError(f"word {words[index]!r} alone has {len(pieces)} pieces, "
                                 f"more than --max-seq-length allows")
            if used + len(pieces) > budget:
                yield start, index
                start, used = index, 0
            used += len(pieces)
        yield start, len(word_pieces)

    def featurise(self, sentences: List[Sentence], label_index, train: bool):
        dictionary = self.text_encoder.dictionary
        all_words = [word for words, _ in sentences for word in words]
        encoded = self.text_encoder.encode_batch(all_words)
        features, cursor = [], 0
        for sentence_id, (words, tags) in enumerate(sentences):
            pieces = [ids or [dictionary.unk()] for ids in encoded[cursor:cursor + len(words)]]
            cursor += len(words)
            for begin, end in self.chunks(words, pieces):
                tokens, labels, first_positions = [dictionary.bos()], [IGNORE_LABEL], []
                for word_pieces, tag in zip(pieces[begin:end], tags[begin:end]):
                    first_positions.append(len(tokens))
                    label = label_index.get(tag, IGNORE_LABEL)
                    rest = label if (train and self.args.label_subtokens == "all") else IGNORE_LABEL
                    tokens.extend(word_pieces)
                    labels.extend([label] + [rest] * (len(word_pieces) - 1))
                tokens.append(dictionary.eos())
                labels.append(IGNORE_LABEL)
                features.append({"tokens": tokens, "labels": labels, "sentence": sentence_id,
                                 "begin": begin, "first_positions": first_positions})
        return features

    def _write(self, split, features):
        write_sequences(os.path.join(self.data_dir, f"{split}.tokens"), [f["tokens"] for f in features])
        write_sequences(os.path.join(self.data_dir, f"{split}.labels"), [f["labels"] for f in features])

    def prepare(self):
        args = self.args
        os.makedirs(self.data_dir, exist_ok=True)
        shutil.copy(self.pretrained.dict_path, os.path.join(self.data_dir, "dict.txt"))
        train = self.read(args.train, train=True)[: args.max_train_examples]
        if not train:
            raise InputError(f"{args.train}: no sentences")
        self.label_names = sorted({tag for _, tags in train for tag in tags})
        with open(os.path.join(self.data_dir, "labels.txt"), "w", encoding="utf-8") as out:
            out.writelines(name + "\n" for name in self.label_names)
        label_index = {name: i for i, name in enumerate(self.label_names)}
        train_features = self.featurise(train, label_index, train=True)
        self._write("train", train_features)
        self.num_train = len(train_features)
        self.train_tags = [tags for _, tags in train]
        counts = {}
        files = self.language_files()
        if getattr(args, "dev", None):
            files[DEV] = [args.dev]
        for lang, paths in files.items():
            sentences = [s for path in paths for s in self.read(path)][: args.max_eval_examples]
            if lang == DEV and not sentences:
                raise InputError(f"--dev {args.dev}: no sentences")
            features = self.featurise(sentences, label_index, train=False)
            self._write(f"test_{lang}", features)
            self.eval_sentences[lang], self.eval_chunks[lang] = sentences, features
            if lang != DEV:
                self.gold[lang] = [list(tags) for _, tags in sentences]
                counts[lang] = len(sentences)
        return counts

    def task_args(self):
        criterion = "xsl_salt_token_labeling" if getattr(self.args, "salt", None) else "xsl_token_labeling"
        return ["--task", "xsl_token_labeling", "--criterion", criterion, "--head-name", HEAD]

    def predict(self, model, task, lang) -> List[List[str]]:
        sentences, features = self.eval_sentences[lang], self.eval_chunks[lang]
        predicted = [["O"] * len(words) for words, _ in sentences]
        with torch.inference_mode():
            for sample in iterate_batches(task, f"test_{lang}"):
                best = token_label_logits(model, sample["net_input"], HEAD).argmax(-1)
                for row, chunk_id in enumerate(sample["id"].tolist()):
                    chunk = features[chunk_id]
                    for offset, position in enumerate(chunk["first_positions"]):
                        label = self.label_names[int(best[row, position])]
                        predicted[chunk["sentence"]][chunk["begin"] + offset] = label
        return predicted

    def score(self, model, task, lang):
        """``(scores, predicted tags of every sentence)``."""
        predicted = self.predict(model, task, lang)
        return {**self.tag_scores(lang, predicted), "examples": len(self.eval_sentences[lang])}, predicted

    def run_seed(self, seed, finetune_config, save_dir, tensorboard_dir, languages):
        return finetune_and_score(self, seed, finetune_config, save_dir, tensorboard_dir, languages,
                                  self.task_args())


class NEREvaluation(TaggingEvaluation):
    layouts = ("iob2",)

    @staticmethod
    def metrics_reported():
        return ["f1", "f1_shared_types"]

    @staticmethod
    def metric_definitions():
        return {"f1": "XTREME (panx): seqeval entity F1 over every entity type",
                "f1_shared_types": "seqeval entity F1 on the entity types both the training data and "
                                   "this language's test data use (evaluated_entity_types)"}

    def read(self, path, train=False):
        return read_iob2(path, repair_entity_starts=train)

    def tag_scores(self, lang, predicted):
        gold = [tags for _, tags in self.eval_sentences[lang]]
        shared, ignored = shared_entity_types(self.train_tags, gold)
        if lang != DEV:
            self.extra_report.setdefault("ignored_entity_types", {})[lang] = sorted(ignored)
            self.extra_report.setdefault("evaluated_entity_types", {})[lang] = sorted(shared)
        return {"f1": ner_f1(gold, predicted)["f1"], "f1_shared_types": ner_f1(gold, predicted, keep_types=shared)["f1"]}


class POSEvaluation(TaggingEvaluation):
    layouts = ("conllu", "xtreme_tsv")

    @staticmethod
    def metrics_reported():
        return ["f1", "accuracy"]

    @staticmethod
    def metric_definitions():
        return {"f1": "XTREME (udpos): seqeval F1 over the UPOS tag sequences",
                "accuracy": "share of words with the right UPOS tag"}

    def read(self, path, train=False):
        return read_conllu(path) if str(path).endswith(".conllu") else read_xtreme_pos_tsv(path)

    def tag_scores(self, lang, predicted):
        gold_sentences = [list(tags) for _, tags in self.eval_sentences[lang]]
        gold = [tag for tags in gold_sentences for tag in tags]
        flat = [tag for tags in predicted for tag in tags]
        unseen = sorted(set(gold) - set(self.label_names))
        if unseen and lang != DEV:
            self.extra_report.setdefault("tags_not_in_training", {})[lang] = unseen
        return {"f1": pos_f1(gold_sentences, predicted), "accuracy": accuracy(flat, gold)}
