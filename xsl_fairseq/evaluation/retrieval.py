"""``xsl-eval retrieval``: sentence retrieval without fine-tuning (Tatoeba, FLORES, NTREX).

Each sentence is encoded as ``<s> [--prefix] pieces </s>`` (cut to ``--max-seq-length``) and
represented by the mean of one hidden layer over its real tokens (specials included, as
XTREME's Tatoeba/BUCC scripts do). The default layer is XTREME's: ``evaluate_retrieval.py
--specific_layer 7`` indexes the hidden states *without* the embedding output, so it takes
Transformer layer 8 of 12 (``--layer 8`` here, where 0 is the embedding output; layer
L/2 + 2 in general, 14 of 24 as XTREME's ``LAYER=13`` for large models).

Scores: ``accuracy`` is XTREME's Tatoeba score, one direction: the other language's
sentences are indexed and every English sentence searches them (``en_to_xx``);
``xx_to_en`` is the other direction and ``mean_both_directions`` the mean of the two (the
figure this project reported before). Predictions (for every English sentence, the index
of the retrieved sentence) are written beside ``results.json``.
"""
import contextlib
import logging
from typing import List, Optional

import numpy as np
import torch
from tqdm import tqdm

from preprocess import InputError

from ..modules.mlctl import MLCTL_HEAD, sentence_representation
from ..modules.pooling import encoder_hidden_states, masked_mean
from .metrics import retrieval_predictions
from .pretrained import load_encoder_for_inference
from .readers import discover_language_files, read_line_aligned

logger = logging.getLogger(__name__)


def xtreme_default_layer(num_layers: int) -> int:
    """XTREME's retrieval layer as an index into [embeddings, layer 1, ..., layer L]: its
    ``--specific_layer`` (7 of 12, 13 of 24) counts from the first Transformer layer."""
    return min(num_layers // 2 + 2, num_layers)


@contextlib.contextmanager
def first_layers_only(model, count: Optional[int]):
    """Run only the first ``count`` Transformer layers (the states above the one that is
    pooled are never used, so computing them is wasted time)."""
    encoder = getattr(getattr(model, "encoder", None), "sentence_encoder", None)
    layers = getattr(encoder, "layers", None)
    if layers is None or count is None or count >= len(layers):
        yield
        return
    encoder.layers = layers[:count]
    try:
        yield
    finally:
        encoder.layers = layers


class RetrievalEvaluation:
    layout = "retrieval"

    def __init__(self, args, pretrained, text_encoder, workdir):
        self.args, self.pretrained, self.text_encoder = args, pretrained, text_encoder
        self.pairs = {}
        self.predictions, self.gold = {}, {}  # per language, read by cli.run after each seed
        layer = args.layer if args.layer is not None else xtreme_default_layer(pretrained.num_layers)
        num_states = pretrained.num_layers + 1
        if not -num_states <= layer < num_states:  # before any sentence is read or encoded
            raise InputError(f"--layer {layer}: {pretrained.checkpoint} has hidden states 0..{num_states - 1} "
                             f"(0 = embeddings, {pretrained.num_layers} = last layer)")
        self.layer = layer
        self.prefix = getattr(args, "prefix", "") or ""
        self.english_prefix = getattr(args, "english_prefix", None)
        if self.english_prefix is None:
            self.english_prefix = self.prefix
        self.extra_report = {"layer": layer, "xtreme_specific_layer": layer - 1,
                             "prefix": self.prefix, "english_prefix": self.english_prefix}
        self._english_cache = {}
        # --representation mlctl / mlctl-head: ML-CTL's avg-first-last vector (optionally through
        # the trained MLP); --layer is then unused (xsl_fairseq.modules.mlctl)
        self.representation = getattr(args, "representation", "layer")
        self.extra_report["representation"] = self.representation
        self.layers_needed = layer if self.representation == "layer" and layer >= 0 else None

    prediction_format = "indices"

    @staticmethod
    def metrics_reported():
        return ["accuracy", "en_to_xx", "xx_to_en", "mean_both_directions"]

    @staticmethod
    def metric_definitions():
        return {"accuracy": "XTREME Tatoeba accuracy: English sentences query the other language (= en_to_xx)",
                "en_to_xx": "English sentence -> nearest sentence of the other language",
                "xx_to_en": "sentence of the other language -> nearest English sentence",
                "mean_both_directions": "mean of en_to_xx and xx_to_en (this project's figure before XTREME's)"}

    def prepare(self):
        files = discover_language_files(self.args.eval_dir, self.layout, self.args.split)
        counts = {}
        for lang, (xx_file, en_file) in files.items():
            if self.args.languages and lang not in self.args.languages:
                continue
            self.pairs[lang] = read_line_aligned(xx_file, en_file)[: self.args.max_eval_examples]
            counts[lang] = len(self.pairs[lang])
        return counts

    def embed(self, model, sentences: List[str], prefix: str = "", batch_size: int = 64) -> torch.Tensor:
        dictionary = self.text_encoder.dictionary
        encoded = [[dictionary.bos(), *ids[: self.args.max_seq_length - 2], dictionary.eos()]
                   for ids in self.text_encoder.encode_batch([prefix + text for text in sentences])]
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
        vectors = [None] * len(encoded)
        for start in range(0, len(order), batch_size):
            batch_ids = order[start:start + batch_size]
            width = max(len(encoded[i]) for i in batch_ids)
            tokens = torch.full((len(batch_ids), width), dictionary.pad(), dtype=torch.long)
            for row, i in enumerate(batch_ids):
                tokens[row, : len(encoded[i])] = torch.tensor(encoded[i])
            # the layer representation needs no state above --layer
            with torch.inference_mode(), first_layers_only(model, self.layers_needed):
                states = encoder_hidden_states(model, tokens)
            if self.representation == "layer":
                pooled = masked_mean(states[self.layer], tokens.ne(dictionary.pad()))
            else:
                with torch.inference_mode():
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
        results = {}
        for lang in tqdm(languages, desc="retrieval"):
            xx_sentences = [xx for xx, _ in self.pairs[lang]]
            en_sentences = tuple(en for _, en in self.pairs[lang])
            if en_sentences not in self._english_cache:  # FLORES / NTREX: one English side for all
                self._english_cache = {en_sentences: self.embed(model, list(en_sentences), self.english_prefix)}
            xx_to_en_index, en_to_xx_index = retrieval_predictions(self.embed(model, xx_sentences, self.prefix),
                                                                   self._english_cache[en_sentences])
            gold = np.arange(len(xx_sentences))
            xx_to_en = 100.0 * float(np.mean(xx_to_en_index == gold))
            en_to_xx = 100.0 * float(np.mean(en_to_xx_index == gold))
            self.predictions[lang] = en_to_xx_index.tolist()
            self.gold[lang] = gold.tolist()
            results[lang] = {"accuracy": en_to_xx, "en_to_xx": en_to_xx, "xx_to_en": xx_to_en,
                             "mean_both_directions": (xx_to_en + en_to_xx) / 2, "examples": len(xx_sentences)}
        return results
