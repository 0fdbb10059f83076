"""``xsl-eval retrieval``: sentence retrieval without fine-tuning (Tatoeba, FLORES, NTREX).

Each sentence is encoded as ``<s> pieces </s>`` (cut to ``--max-seq-length``) and
represented by the mean of one hidden layer over its real tokens (specials included,
as XTREME's Tatoeba/BUCC scripts do). Accuracy is the share of sentences whose cosine
nearest neighbour among the other language's sentences is their translation, in both
directions (xx->en and en->xx); the table reports their mean.
"""
import logging
from typing import List

import torch
from tqdm import tqdm

from preprocess import InputError

from ..modules.mlctl import MLCTL_HEAD, sentence_representation
from ..modules.pooling import encoder_hidden_states, masked_mean
from .metrics import retrieval_accuracy
from .pretrained import load_encoder_for_inference
from .readers import discover_language_files, read_line_aligned

logger = logging.getLogger(__name__)


class RetrievalEvaluation:
    layout = "retrieval"

    def __init__(self, args, pretrained, text_encoder, workdir):
        self.args, self.pretrained, self.text_encoder = args, pretrained, text_encoder
        self.pairs = {}
        layer = args.layer if args.layer is not None else pretrained.num_layers // 2 + 1
        self.extra_report = {"layer": layer}
        self.layer = layer
        # --representation mlctl / mlctl-head: ML-CTL's avg-first-last vector (optionally through
        # the trained MLP); --layer is then unused (xsl_fairseq.modules.mlctl)
        self.representation = getattr(args, "representation", "layer")
        self.extra_report["representation"] = self.representation

    @staticmethod
    def metrics_reported():
        return ["accuracy", "xx_to_en", "en_to_xx"]

    def prepare(self):
        files = discover_language_files(self.args.eval_dir, self.layout, self.args.split)
        counts = {}
        for lang, (xx_file, en_file) in files.items():
            if self.args.languages and lang not in self.args.languages:
                continue
            self.pairs[lang] = read_line_aligned(xx_file, en_file)[: self.args.max_eval_examples]
            counts[lang] = len(self.pairs[lang])
        return counts

    def embed(self, model, sentences: List[str], batch_size: int = 64) -> torch.Tensor:
        dictionary = self.text_encoder.dictionary
        encoded = [[dictionary.bos(), *ids[: self.args.max_seq_length - 2], dictionary.eos()]
                   for ids in self.text_encoder.encode_batch(sentences)]
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
        vectors = [None] * len(encoded)
        for start in range(0, len(order), batch_size):
            batch_ids = order[start:start + batch_size]
            width = max(len(encoded[i]) for i in batch_ids)
            tokens = torch.full((len(batch_ids), width), dictionary.pad(), dtype=torch.long)
            for row, i in enumerate(batch_ids):
                tokens[row, : len(encoded[i])] = torch.tensor(encoded[i])
            with torch.no_grad():
                states = encoder_hidden_states(model, tokens)
            if self.representation == "layer":
                pooled = masked_mean(states[self.layer], tokens.ne(dictionary.pad()))
            else:
                with torch.no_grad():
                    pooled = sentence_representation(model, states, tokens, dictionary.pad(),
                                                     through_head=self.representation == "mlctl-head")
            for row, i in enumerate(batch_ids):
                vectors[i] = pooled[row]
        return torch.stack(vectors)

    def run_seed(self, seed, finetune_config, save_dir, tensorboard_dir, languages):
        model, _ = load_encoder_for_inference(self.pretrained)
        if self.representation == "mlctl-head" and MLCTL_HEAD not in getattr(model, "task_heads", {}):
            raise InputError(f"{self.pretrained.checkpoint}: no trained ML-CTL head ({MLCTL_HEAD}); it was not "
                             "trained with --task xsl_mlctl: use --representation mlctl")
        num_states = self.pretrained.num_layers + 1
        if not -num_states <= self.layer < num_states:
            raise ValueError(f"--layer {self.layer}: the model has layers 0..{num_states - 1}")
        results = {}
        for lang in tqdm(languages, desc="retrieval"):
            xx_sentences = [xx for xx, _ in self.pairs[lang]]
            en_sentences = [en for _, en in self.pairs[lang]]
            xx_to_en, en_to_xx = retrieval_accuracy(self.embed(model, xx_sentences), self.embed(model, en_sentences))
            results[lang] = {"accuracy": (xx_to_en + en_to_xx) / 2, "xx_to_en": xx_to_en,
                             "en_to_xx": en_to_xx, "examples": len(self.pairs[lang])}
        return results
