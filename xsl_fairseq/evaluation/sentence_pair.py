"""``xsl-eval sentence-pair``: XNLI / PAWS-X, accuracy per language.

Data go into fairseq's ``sentence_prediction`` layout (``input0/ input1/ label/``)
and fine-tuning runs ``xsl_sentence_prediction`` with fairseq's ``sentence_prediction``
criterion (``--salt``: SALT's ``xsl_salt``, options through ``--fairseq-args``). Inputs are ``<s> A </s></s> B </s>`` (XLM-R's pair format); pairs longer
than ``--max-seq-length`` are cut longest-side-first, as Hugging Face's
``truncation=True`` does in XTREME's scripts.
"""
import logging
import os
import shutil
from typing import Dict, List

import torch

from preprocess import InputError

from ..data.features import write_sequences
from .finetune import DEV, finetune_and_score, iterate_batches
from .readers import SentencePairExample, discover_language_files, read_sentence_pair_tsv

logger = logging.getLogger(__name__)

HEAD = "sentence_classification_head"


def truncate_longest_first(a: List[int], b: List[int], max_content: int):
    a, b = list(a), list(b)
    while len(a) + len(b) > max_content:
        if len(a) >= len(b):
            a.pop()
        else:
            b.pop()
    return a, b


class SentencePairEvaluation:
    layout = "xtreme_tsv"

    prediction_format = "labels"

    @staticmethod
    def metrics_reported():
        return ["accuracy"]

    @staticmethod
    def metric_definitions():
        return {"accuracy": "share of pairs with the right label (XTREME: xnli, pawsx)"}

    def __init__(self, args, pretrained, text_encoder, workdir):
        self.args, self.pretrained, self.text_encoder = args, pretrained, text_encoder
        self.data_dir = os.path.join(workdir, "data")
        self.dropped = {}
        self.predictions, self.gold = {}, {}
        self.extra_report = {}

    def _write_split(self, split, examples: List[SentencePairExample], label_index, source):
        eos = self.text_encoder.dictionary.eos()
        firsts = self.text_encoder.encode_batch([ex.text_a for ex in examples])
        seconds = self.text_encoder.encode_batch([ex.text_b for ex in examples])
        # <s> a </s> </s> b </s>: 4 specials
        max_content = self.args.max_seq_length - 4
        input0, input1, labels, truncated = [], [], [], 0
        for ex, a, b in zip(examples, firsts, seconds):
            if ex.label not in label_index:
                raise InputError(f"{source}:{ex.line}: label {ex.label!r} is not among the labels of the "
                                 f"evaluation data {sorted(label_index)}")
            cut_a, cut_b = truncate_longest_first(a, b, max_content)
            truncated += (len(cut_a), len(cut_b)) != (len(a), len(b))
            input0.append(cut_a + [eos])
            input1.append(cut_b + [eos])
            labels.append([label_index[ex.label], eos])
        write_sequences(os.path.join(self.data_dir, "input0", split), input0)
        write_sequences(os.path.join(self.data_dir, "input1", split), input1)
        write_sequences(os.path.join(self.data_dir, "label", split), labels)
        if truncated:
            logger.info("%s: %d of %d pairs truncated to %d tokens", source, truncated,
                        len(examples), self.args.max_seq_length)
        return len(examples)

    def prepare(self) -> Dict[str, int]:
        """Write the English training split and one test split per language.

        The classes are the labels the evaluation files declare (every label they use), not
        those of the training file: a mistyped training label would otherwise become an
        extra class. A training or ``--dev`` label outside them is an error at its line."""
        args = self.args
        held_out = getattr(args, "held_out_items", 0)
        train = read_sentence_pair_tsv(args.train)
        if held_out and held_out >= len(train):
            raise InputError(f"{args.train}: --held-out-items {held_out} leaves none of its {len(train)} "
                             f"items for training")
        evaluated = {lang: read_sentence_pair_tsv(path) for lang, path in self.language_files().items()}
        if not evaluated:
            return {}
        declared = {ex.label for examples in evaluated.values() for ex in examples}
        train = train[held_out:][: args.max_train_examples]
        self.label_names = sorted(declared)
        untrained = sorted(declared - {ex.label for ex in train})
        if untrained:
            logger.warning("%s: no training example of label(s) %s, which the evaluation data use",
                           args.train, untrained)
        os.makedirs(os.path.join(self.data_dir, "input0"), exist_ok=True)
        os.makedirs(os.path.join(self.data_dir, "label"), exist_ok=True)
        shutil.copy(self.pretrained.dict_path, os.path.join(self.data_dir, "input0", "dict.txt"))
        with open(os.path.join(self.data_dir, "label", "dict.txt"), "w", encoding="utf-8") as out:
            out.writelines(f"{name} 1\n" for name in self.label_names)
        # label dictionary ids: 4 fairseq specials come first
        label_index = {name: 4 + i for i, name in enumerate(self.label_names)}
        self.num_train = self._write_split("train", train, label_index, args.train)
        counts = {}
        for lang, path in self.language_files().items():
            examples = evaluated[lang][: held_out or None][: args.max_eval_examples]
            counts[lang] = self._write_split(f"test_{lang}", examples, label_index, str(path))
            self.gold[lang] = [ex.label for ex in examples]
        if getattr(args, "dev", None):
            dev = read_sentence_pair_tsv(args.dev)[: args.max_eval_examples]
            if not dev:
                raise InputError(f"--dev {args.dev}: no examples")
            self._write_split(f"test_{DEV}", dev, label_index, args.dev)
        if getattr(args, "salt", None) == "offline":
            self._write_salt_copy()
        return counts

    def _write_salt_copy(self):
        """``--salt offline``: code-switch the training split once with the pretrained model,
        using the SALT options given in ``--fairseq-args``."""
        import argparse
        import shlex

        from ..criterions.xsl_salt import XslSaltConfig
        from ..data.salt_augment import write_salt_augmented_copy
        from .pretrained import load_encoder_for_inference

        defaults = XslSaltConfig()
        parser = argparse.ArgumentParser(add_help=False)
        parser.add_argument("--salt-cs-prob", type=float, default=defaults.salt_cs_prob)
        parser.add_argument("--salt-topk", type=int, default=defaults.salt_topk)
        parser.add_argument("--salt-cs-sampling", default=defaults.salt_cs_sampling)
        parser.add_argument("--salt-random-substitutes", action="store_true")
        parser.add_argument("--seed", type=int, default=1)
        options, _ = parser.parse_known_args(shlex.split(self.args.fairseq_args))
        model, task = load_encoder_for_inference(self.pretrained)
        self.salt_dir = os.path.join(os.path.dirname(self.data_dir), "data_salt")
        self.extra_report = {"salt_offline_copy": write_salt_augmented_copy(
            model, task.source_dictionary, self.data_dir, self.salt_dir, cs_prob=options.salt_cs_prob,
            topk=options.salt_topk, sampling=options.salt_cs_sampling,
            random_substitutes=options.salt_random_substitutes, seed=options.seed)}

    def language_files(self):
        files = discover_language_files(self.args.eval_dir, self.layout, self.args.split)
        return {lang: path for lang, path in files.items() if not self.args.languages or lang in self.args.languages}

    def task_args(self):
        salt = getattr(self.args, "salt", None)
        criterion = ["--criterion", "xsl_salt" if salt else "sentence_prediction"]
        if salt == "offline":
            criterion += ["--salt-substitutes", "offline", "--salt-mix-prob", "0",
                          "--salt-augmented-data", self.salt_dir]
        return ["--task", "xsl_sentence_prediction", *criterion,
                "--num-classes", str(len(self.label_names)), "--init-token", "0", "--separator-token", "2",
                "--classification-head-name", HEAD]

    def score(self, model, task, lang):
        """``({"accuracy", "examples"}, predicted label of every example in file order)``."""
        predicted, correct = {}, 0
        with torch.inference_mode():
            for sample in iterate_batches(task, f"test_{lang}"):
                logits = model(**sample["net_input"], features_only=True, classification_head_name=HEAD)[0]
                best = logits.argmax(-1)
                correct += (best == model.get_targets(sample, [logits]).view(-1)).sum().item()
                for example_id, label in zip(sample["id"].tolist(), best.tolist()):
                    predicted[example_id] = self.label_names[label]
        total = len(predicted)
        return ({"accuracy": 100.0 * correct / max(total, 1), "examples": total},
                [predicted[i] for i in range(total)])

    def run_seed(self, seed, finetune_config, save_dir, tensorboard_dir, languages):
        return finetune_and_score(self, seed, finetune_config, save_dir, tensorboard_dir, languages,
                                  self.task_args())
