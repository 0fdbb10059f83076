"""Reading a fairseq checkpoint as user input: every failure is one :class:`InputError`
that names the file.

``torch.load`` reports a cut-off download, a text file or someone else's pickle with an
internal message (``PytorchStreamReader failed reading zip archive``, ``Memo value not
found``, ``KeyError: 'best_loss'`` from fairseq's upgrade code), and a checkpoint of the
wrong architecture or vocabulary only fails when fairseq copies its tensors into a model.
The checks here run first, on the file alone (``xsl-eval``, ``xsl-prep``) or against the
model that ``fairseq-train`` has just built (the plugin's tasks, before fairseq loads
``--finetune-from-model`` / ``--restore-file``). A fairseq checkpoint is a dict with the
model's tensors under ``"model"`` and its configuration under ``"cfg"`` (fairseq >= 0.10)
or ``"args"`` (older releases, and official RoBERTa / XLM-R downloads).
"""
import os
import re
from typing import Dict, Iterable, Optional, Tuple

import torch

from . import InputError

# the zip container torch.save writes since torch 1.6, and the protocol-2 pickle of older saves
_ZIP_MAGIC = b"PK\x03\x04"
_PICKLE_MAGIC = b"\x80"

ENCODER_EMBEDDINGS = "encoder.sentence_encoder.embed_tokens.weight"
# RoBERTa checkpoints before fairseq 0.9 name the encoder "decoder" (fairseq renames it on load)
_LEGACY_ENCODER_EMBEDDINGS = "decoder.sentence_encoder.embed_tokens.weight"
_ENCODER_BODY = "encoder.sentence_encoder."
_ENCODER_LAYER = re.compile(r"^encoder\.sentence_encoder\.layers\.(\d+)\.")


def load_fairseq_checkpoint(path: str, required: Tuple[str, ...] = ("model",), mmap: bool = False) -> dict:
    """The checkpoint at ``path`` (on CPU) with the ``required`` entries.

    ``"cfg"`` in ``required`` accepts ``"args"`` too (the configuration of older fairseq
    releases). ``mmap=True`` maps the tensors instead of reading them (for checks of names
    and shapes; files in torch's legacy format are read in full).
    """
    if not os.path.exists(path):
        raise InputError(f"{path}: checkpoint not found")
    if not os.path.isfile(path):
        raise InputError(f"{path}: is a directory, not a checkpoint file")
    with open(path, "rb") as handle:
        magic = handle.read(4)
    if not magic:
        raise InputError(f"{path}: empty file, not a checkpoint")
    if not magic.startswith(_ZIP_MAGIC) and not magic.startswith(_PICKLE_MAGIC):
        raise InputError(f"{path}: not a torch checkpoint (the file does not start like one saved by torch.save)")
    try:
        # fairseq pickles its argparse / omegaconf configuration: weights_only=False, as fairseq
        # itself loads them (checkpoints are trusted input, see xsl_fairseq/compat.py)
        state = torch.load(path, map_location="cpu", weights_only=False, mmap=mmap and magic == _ZIP_MAGIC)
    except Exception as err:  # torch and pickle raise many types for a damaged file
        reason = "truncated or damaged" if magic == _ZIP_MAGIC else "truncated, damaged or not a checkpoint"
        detail = (str(err).splitlines() or [""])[0].split(". ")[0]  # torch's first sentence
        raise InputError(f"{path}: cannot read the checkpoint ({reason}: {type(err).__name__}: {detail})") from err
    if not isinstance(state, dict) or not isinstance(state.get("model"), dict):
        found = type(state).__name__ if not isinstance(state, dict) else f"keys {sorted(map(str, state))[:6]}"
        raise InputError(f"{path}: not a fairseq checkpoint (no 'model' state dict; found {found})")
    missing = [key for key in required if not _has_entry(state, key)]
    if missing:
        names = ", ".join("'cfg' or 'args'" if key == "cfg" else repr(key) for key in missing)
        raise InputError(f"{path}: not a fairseq checkpoint (no {names} entry)")
    return state


def _has_entry(state: dict, key: str) -> bool:
    if key == "cfg":
        return state.get("cfg") is not None or state.get("args") is not None
    return key in state


def _get(config, key):
    """``key`` of a dict / DictConfig or an argparse Namespace (old checkpoints)."""
    return config.get(key) if hasattr(config, "get") else getattr(config, key, None)


def model_config(state: dict):
    """The model configuration of a checkpoint: ``cfg["model"]`` or the old ``args``."""
    cfg = state.get("cfg")
    return _get(cfg, "model") if cfg is not None else state.get("args")


def architecture(state: dict) -> str:
    """The ``--arch`` a checkpoint was trained with, or ``"unknown"``."""
    config = model_config(state)
    if config is None:
        return "unknown"
    return str(_get(config, "arch") or _get(config, "_name") or "unknown")


def encoder_layers(tensors: Iterable[str]) -> int:
    """Number of Transformer layers of a RoBERTa-family state dict."""
    layers = {int(m.group(1)) for m in map(_ENCODER_LAYER.match, tensors) if m}
    return max(layers) + 1 if layers else 0


def require_encoder(state: dict, path: str) -> torch.Tensor:
    """The token embedding matrix of a RoBERTa-family encoder checkpoint (xsl_roberta,
    RoBERTa, XLM-R: ``encoder.sentence_encoder.*``); anything else is refused by name."""
    embeddings = state["model"].get(ENCODER_EMBEDDINGS, state["model"].get(_LEGACY_ENCODER_EMBEDDINGS))
    if embeddings is None:
        raise InputError(f"{path}: arch {architecture(state)!r} is not a RoBERTa-family encoder "
                         f"(no {ENCODER_EMBEDDINGS}); xsl-eval and the plugin's tasks need an "
                         "xsl_roberta / RoBERTa / XLM-R checkpoint")
    return embeddings


def check_dictionary_size(state: dict, path: str, dictionary_size: int, dict_path: str,
                          allow_growth: bool = False) -> None:
    """The checkpoint's embedding rows against a dictionary of ``dictionary_size`` entries
    (``dict_path`` plus fairseq's 4 specials, ``<mask>`` and any extra symbols).

    ``allow_growth``: a dictionary with more entries is accepted (xsl_roberta appends rows
    for symbols added after the checkpoint, e.g. ``[QUE]``).
    """
    rows = require_encoder(state, path).size(0)
    if rows == dictionary_size or (allow_growth and rows < dictionary_size):
        return
    raise InputError(f"{path}: embedding has {rows} rows but {dict_path} (+ specials, <mask> and extra "
                     f"symbols) has {dictionary_size} entries: not the dictionary of this checkpoint")


def check_matches_model(state: dict, path: str, model_tensors: Dict[str, torch.Tensor], arch: str,
                        dict_path: Optional[str] = None) -> None:
    """Every encoder tensor the checkpoint shares with a freshly built model has the model's shape.

    Only the encoder body (``encoder.sentence_encoder.*``) is compared: heads and the
    vocabulary rows of the LM head are the model's own upgrade code's business (xsl_roberta
    drops task heads of another shape and appends rows for new symbols). What would make
    fairseq's ``load_state_dict`` fail with a size mismatch is reported here, with the layer
    count and vocabulary it comes from.
    """
    checkpoint_tensors = state["model"]
    built_layers, saved_layers = encoder_layers(model_tensors), encoder_layers(checkpoint_tensors)
    if ENCODER_EMBEDDINGS in model_tensors and ENCODER_EMBEDDINGS not in checkpoint_tensors:
        require_encoder(state, path)
    if built_layers and saved_layers and built_layers != saved_layers:
        raise InputError(f"{path}: {saved_layers} Transformer layers (arch {architecture(state)!r}), but "
                         f"--arch {arch} builds {built_layers}: pass the checkpoint's architecture")
    if ENCODER_EMBEDDINGS in model_tensors and ENCODER_EMBEDDINGS in checkpoint_tensors:
        vocab = model_tensors[ENCODER_EMBEDDINGS].size(0)
        check_dictionary_size(state, path, vocab, dict_path or "the task's dictionary", allow_growth=True)
    for name, tensor in model_tensors.items():
        saved = checkpoint_tensors.get(name)
        if not name.startswith(_ENCODER_BODY) or name == ENCODER_EMBEDDINGS or not hasattr(saved, "shape"):
            continue
        if tuple(saved.shape) != tuple(tensor.shape):
            raise InputError(f"{path}: {name} has shape {tuple(saved.shape)} (arch {architecture(state)!r}), "
                             f"--arch {arch} builds {tuple(tensor.shape)}: pass the checkpoint's architecture")


def start_checkpoint(restore_file: Optional[str], save_dir: Optional[str],
                     finetune_from_model: Optional[str]) -> Optional[Tuple[str, str]]:
    """``(path, option)`` of the checkpoint ``fairseq-train`` will load, or None.

    Mirrors ``fairseq.checkpoint_utils.load_checkpoint``: a ``checkpoint_last.pt`` in
    ``--save-dir`` (resume) wins over ``--finetune-from-model``; a ``--restore-file`` other
    than the default is loaded as given. fairseq starts from scratch when that file does
    not exist, which a mistyped path would turn into a silent restart: reported here.
    """
    default = "checkpoint_last.pt"
    restore_file = restore_file or default
    if restore_file != default:
        if not os.path.exists(restore_file):
            raise InputError(f"--restore-file {restore_file}: checkpoint not found (fairseq would silently "
                             "train from scratch)")
        return restore_file, "--restore-file"
    last = os.path.join(save_dir or ".", default)
    if os.path.exists(last):
        return last, "resume from --save-dir"
    if finetune_from_model:
        return finetune_from_model, "--finetune-from-model"
    return None
