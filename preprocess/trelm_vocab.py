"""``xsl-prep trelm-vocab``: TreLM's vocabulary transfer (stage 0 of the notes; official code
agcbi2017/TreLM ``create_trelm_*_model.py``, ``scripts/extact_vocab_fasttext_embedding.py``, ``trelm/MUSE``).

From an English encoder (a checkpoint of this plugin or an official RoBERTa, with its ``dict.txt``) and
English + new-language text it writes what stage 1 (``--task xsl_trelm_cdlm --trelm-stage commonality``)
starts from:

1. **Joint vocabulary**: one sentencepiece model over both texts (``--vocab-size``; the official code
   trains an 80k joint WordPiece) -> ``spm.model``, ``dict.txt``.
2. **Static embeddings** for every piece: fastText skip-gram (the ``fasttext`` bindings of
   ``fasttext-numpy2``; the official settings dim = model dim, ``ws`` 5, ``neg`` 10, 10 epochs, every piece
   kept) on the joint corpus segmented into pieces. Pieces fastText never saw get 1e-8 vectors (as the
   official script).
3. **Adversarial alignment** of those vectors to the English model's frozen input embeddings, Procrustes
   refinement over CSLS dictionaries and the unsupervised selection criterion per epoch
   (:mod:`preprocess.embedding_alignment`; the MUSE schedule, scaled down with ``--adv-epochs``,
   ``--epoch-size`` etc.). ``--align-rescale`` first scales the fastText vectors to the mean norm of the
   English embeddings (off by default, as the official code; an orthogonal map cannot change norms, so
   with very different norms the discriminator wins on norm alone). ``--source-normalize center`` (MUSE's
   ``--normalize_embeddings``; the official setting is none) removes the common direction that fastText
   vectors trained on little text share (their mean cosine can exceed 0.99, which collapses every CSLS
   dictionary onto one or two target words; ``distinct_targets`` in the history shows it).
4. **Initial xsl_trelm checkpoint** (``model.pt``): the English encoder with the mapped vectors as word
   embedding (and tied output projection). The special symbols (``<s> <pad> </s> <unk> <mask>``) keep the
   English model's rows (the official code maps them like words; their English rows are what the
   encoder expects). The LM head is re-created (``--lm-head fresh``, as the official code: new dense
   layer, LayerNorm, zero bias) or keeps the English transform (``--lm-head english``). The TRILayer is
   the copy of layer L/2 and the language embedding is zero (``xsl_trelm``'s checkpoint mapping).

``trelm_vocab.json`` records the criterion per adversarial epoch and refinement round, the fastText and
alignment settings and the counts.
"""
import json
import logging
import os
import tempfile
import time
from dataclasses import asdict
from typing import List, Optional

import torch

from . import InputError
from .atomic import atomic_write
from .checks import check_dictionary
from .embedding_alignment import AlignmentConfig, align_embeddings, normalization_steps, normalize_embeddings
from .import_encoder import EncoderShape, build_fairseq_model, load_fairseq_checkpoint, save_fairseq_checkpoint
from .spm import train_sentencepiece
from .text import iter_lines, write_lines

logger = logging.getLogger(__name__)

LM_HEAD_CHOICES = ("fresh", "english")
MISSING_VECTOR = 1e-8  # the official script's vector for pieces fastText has none for
EMBED_KEY = "encoder.sentence_encoder.embed_tokens.weight"


def _dictionary_counts(dictionary) -> torch.Tensor:
    return torch.tensor(dictionary.count, dtype=torch.float)


def _by_frequency(dictionary) -> torch.Tensor:
    """Regular symbols (no specials, no <mask>) ordered by their count, most frequent first."""
    counts = _dictionary_counts(dictionary)
    rows = torch.arange(dictionary.nspecial, len(dictionary))
    rows = rows[[dictionary[int(r)] != "<mask>" for r in rows]]
    return rows[torch.argsort(-counts[rows], stable=True)]


def _shape_of(model_cfg) -> EncoderShape:
    from fairseq.utils import safe_getattr as get

    return EncoderShape(
        layers=int(get(model_cfg, "encoder_layers", 12)), hidden=int(get(model_cfg, "encoder_embed_dim", 768)),
        heads=int(get(model_cfg, "encoder_attention_heads", 12)),
        ffn=int(get(model_cfg, "encoder_ffn_embed_dim", 3072)),
        max_positions=int(get(model_cfg, "max_positions", None) or get(model_cfg, "tokens_per_sample", 512)),
        activation_fn=str(get(model_cfg, "activation_fn", "gelu")),
        layer_norm_eps=float(get(model_cfg, "layernorm_eps", None) or 1e-5),
        normalize_before=bool(get(model_cfg, "encoder_normalize_before", False)),
    )


def train_fasttext(lines: List[str], dim: int, epochs: int, threads: int, min_count: int = 1):
    """fastText skip-gram on pieces; its Python API fixes the seed (0), so one thread is reproducible."""
    import fasttext

    with tempfile.TemporaryDirectory() as tmp:
        corpus = os.path.join(tmp, "pieces.txt")
        write_lines(corpus, lines)
        return fasttext.train_unsupervised(corpus, model="skipgram", dim=dim, epoch=epochs, minCount=min_count,
                                           ws=5, neg=10, thread=threads, verbose=0)


def build_vocabulary(english_checkpoint: str, english_text: List[str], new_text: List[str], destdir: str,
                     vocab_size: int, english_dict: Optional[str] = None, arch: str = "xsl_trelm",
                     fasttext_epochs: int = 10, threads: int = 1, align_rescale: bool = False, source_normalize: str = "",
                     lm_head: str = "fresh", alignment: Optional[AlignmentConfig] = None,
                     max_lines_per_file: Optional[int] = None, seed: int = 1) -> dict:
    from xsl_fairseq.data.dictionary import load_dictionary

    alignment = alignment or AlignmentConfig(seed=seed)
    if lm_head not in LM_HEAD_CHOICES:
        raise InputError(f"--lm-head {lm_head!r}: choose from {', '.join(LM_HEAD_CHOICES)}")
    if vocab_size < 16:
        raise InputError(f"--vocab-size {vocab_size} is too small")
    try:
        normalization_steps(source_normalize)
    except ValueError as err:
        raise InputError(f"--source-normalize {source_normalize!r}: {err}") from err
    for path in [*english_text, *new_text]:
        if not any(text.strip() for _, text in iter_lines(path)):
            raise InputError(f"{path}: no text (empty file)")
    state = load_fairseq_checkpoint(english_checkpoint, required=("model", "cfg"))
    english = state["model"]
    if EMBED_KEY not in english:
        raise InputError(f"{english_checkpoint}: no {EMBED_KEY}: not a RoBERTa-family encoder checkpoint")
    english_dict = english_dict or os.path.join(os.path.dirname(os.path.abspath(english_checkpoint)), "dict.txt")
    if not os.path.isfile(english_dict):
        raise InputError(f"{english_dict}: the English model's dict.txt not found (pass --english-dict)")
    check_dictionary(english_dict)
    en_dictionary = load_dictionary(english_dict)
    en_embed = english[EMBED_KEY].float()
    if en_embed.size(0) < len(en_dictionary):
        raise InputError(f"{english_checkpoint}: {en_embed.size(0)} embedding rows but {english_dict} (+ <mask>) "
                         f"has {len(en_dictionary)} symbols: wrong dictionary")
    shape = _shape_of(state["cfg"]["model"])
    timings = {}

    # 1. joint sentencepiece vocabulary
    start = time.time()
    os.makedirs(destdir, exist_ok=True)
    train_sentencepiece([*english_text, *new_text], os.path.join(destdir, "spm"), vocab_size,
                        max_lines_per_file=max_lines_per_file, seed=seed, threads=threads)
    dictionary = load_dictionary(os.path.join(destdir, "dict.txt"))
    timings["sentencepiece"] = time.time() - start

    # 2. fastText skip-gram over the corpus in pieces
    start = time.time()
    import sentencepiece as spm

    processor = spm.SentencePieceProcessor(model_file=os.path.join(destdir, "spm.model"))
    lines = [text.strip() for path in [*english_text, *new_text] for _, text in iter_lines(path) if text.strip()]
    pieced = [" ".join(pieces) for pieces in processor.encode(lines, out_type=str)]
    vectors = train_fasttext(pieced, shape.hidden, fasttext_epochs, threads)
    known = set(vectors.words)
    source = torch.full((len(dictionary), shape.hidden), MISSING_VECTOR)
    found = 0
    for row in range(dictionary.nspecial, len(dictionary)):
        symbol = dictionary[row]
        if symbol in known:
            source[row] = torch.from_numpy(vectors.get_word_vector(symbol).copy())
            found += 1
    timings["fasttext"] = time.time() - start

    # 3. adversarial alignment + refinement against the frozen English input embeddings
    start = time.time()
    target_rows = _by_frequency(en_dictionary)
    target = en_embed[target_rows]  # regular English symbols, most frequent first
    source_rows = _by_frequency(dictionary)
    try:
        source[source_rows] = normalize_embeddings(source[source_rows], source_normalize)
    except ValueError as err:
        raise InputError(f"--source-normalize {source_normalize!r}: {err}") from err
    norms = {"fasttext_mean_norm": float(source[source_rows].norm(dim=1).mean()),  # after --source-normalize
             "english_mean_norm": float(target.norm(dim=1).mean())}
    if align_rescale:
        source[source_rows] *= norms["english_mean_norm"] / max(norms["fasttext_mean_norm"], 1e-12)
    src = source[source_rows]  # row k of src = dictionary row source_rows[k]
    order = torch.arange(src.size(0))
    result = align_embeddings(src, target, order, torch.arange(target.size(0)), alignment)
    mapped = source.clone()
    mapped[source_rows] = src @ result.mapping.t()
    timings["alignment"] = time.time() - start

    # specials and <mask> keep the English rows
    for symbol in [dictionary[i] for i in range(dictionary.nspecial)] + ["<mask>"]:
        mapped[dictionary.index(symbol)] = en_embed[en_dictionary.index(symbol)]

    # 4. the initial xsl_trelm checkpoint
    cfg, _, model = build_fairseq_model(destdir, arch, shape, seed=seed)
    new_state = model.state_dict()
    for key, value in english.items():
        if key in new_state and key not in (EMBED_KEY, "encoder.lm_head.weight", "encoder.lm_head.bias"):
            if lm_head == "fresh" and key.startswith("encoder.lm_head."):
                continue
            if new_state[key].shape != value.shape:
                raise InputError(f"{english_checkpoint}: {key} has shape {tuple(value.shape)}, the rebuilt "
                                 f"model {tuple(new_state[key].shape)}")
            new_state[key] = value
    for key in [k for k in new_state if k.startswith("encoder.trilayer.") or k in (
            "encoder.language_embeddings.weight", "encoder.trelm_version")]:
        if key not in english:
            del new_state[key]  # xsl_trelm's mapping creates them from the English layers
    new_state[EMBED_KEY] = mapped.to(new_state["encoder.lm_head.bias"].dtype)
    new_state["encoder.lm_head.weight"] = new_state[EMBED_KEY]
    new_state["encoder.lm_head.bias"] = torch.zeros(len(dictionary))
    model.load_state_dict(new_state, strict=True)
    provenance = {"english_checkpoint": os.path.abspath(english_checkpoint), "tool": "xsl-prep trelm-vocab"}
    save_fairseq_checkpoint(os.path.join(destdir, "model.pt"), cfg, model, provenance)

    report = {
        "english_checkpoint": os.path.abspath(english_checkpoint),
        "arch": arch, "shape": asdict(shape), "vocabulary": len(dictionary),
        "english_vocabulary": len(en_dictionary),
        "pieces_with_fasttext_vector": found, "pieces_without": len(dictionary) - dictionary.nspecial - 1 - found,
        "fasttext": {"model": "skipgram", "dim": shape.hidden, "epoch": fasttext_epochs, "ws": 5, "neg": 10,
                     "minCount": 1, "threads": threads},
        "align_rescale": align_rescale, "source_normalize": source_normalize, **norms, "lm_head": lm_head,
        "alignment": asdict(alignment), "history": result.history,
        "best_criterion": round(result.best_criterion, 5),
        "orthogonality_error": float((result.mapping @ result.mapping.t() - torch.eye(shape.hidden)).abs().max()),
        "seconds": {k: round(v, 1) for k, v in timings.items()},
    }
    with atomic_write(os.path.join(destdir, "trelm_vocab.json")) as out:
        json.dump(report, out, indent=2)
    logger.info("trelm-vocab: %d pieces (%d with fastText vectors), best criterion %.4f -> %s", len(dictionary),
                found, result.best_criterion, destdir)
    return report
