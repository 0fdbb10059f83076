"""Trim an imported encoder's vocabulary to the pieces a set of corpora uses.

e5-small spends 96M of its 118M parameters on a 250k-piece embedding, most of which
the languages at hand never touch; every update pays for that matrix (its gradient,
Adam state and the tied output projection). ``xsl-prep trim-vocab`` encodes the
corpora with the directory's sentencepiece model and keeps:

* sentencepiece's ``<unk> <s> </s>`` and fairseq's ``<s> <pad> </s> <unk>``,
* every piece that occurs in the encoded corpora,
* ``<mask>`` and any extra special symbols of the checkpoint (``--extra-special-symbols``),

in their original order. It writes ``DEST/`` in the layout of ``xsl-prep
import-encoder``: ``sentencepiece.bpe.model`` (the original model, normaliser
included, with only the kept pieces and their original scores), ``dict.txt`` (kept
pieces, counts = their frequency in the corpora) and ``model.pt`` whose vocabulary
rows (``embed_tokens``, the tied ``lm_head.weight`` and ``lm_head.bias``) are
gathered in the new order; everything else is unchanged.

Why the segmentation of kept text does not change: unigram sentencepiece picks the
highest-scoring segmentation among all paths through its pieces. Removing pieces
only removes paths, so a segmentation made of kept pieces that was best before is
still available and still best. (One caveat: sentencepiece gives an unknown
character the score ``min(piece score) - 10``, and the minimum can rise after
trimming; this matters only for characters that had no piece.) The trim re-encodes
the corpora with the trimmed model and reports any line whose ids differ.
"""
import collections
import dataclasses
import logging
import os
from typing import Dict, List, Sequence

import torch

from . import InputError
from .atomic import atomic_paths, atomic_write
from .import_encoder import (
    DICT_FILE, FAIRSEQ_SPECIALS, MASK_SYMBOL, MODEL_FILE, SPM_FILE, SPM_SPECIALS, encoder_dir_files,
    load_fairseq_checkpoint, write_dict,
)
from .text import iter_lines

logger = logging.getLogger(__name__)

VOCAB_SIZED_KEYS = (  # the same keys as xsl_fairseq.models.xsl_roberta.VOCAB_SIZED_KEYS
    "encoder.sentence_encoder.embed_tokens.weight",
    "encoder.lm_head.weight",
    "encoder.lm_head.bias",
)
ENCODE_BATCH_LINES = 10000
ENCODER_DIR_HINT = "run xsl-prep import-encoder first"


@dataclasses.dataclass
class TrimReport:
    destdir: str
    vocab_before: int  # fairseq dictionary incl. <mask> and extra symbols
    vocab_after: int
    parameters_before: int
    parameters_after: int
    lines: int
    tokens: int
    changed_lines: int  # lines whose ids differ after trimming (expected 0)


def count_state_parameters(state_dict: Dict[str, torch.Tensor]) -> int:
    """Parameters of a fairseq RoBERTa state dict, counting tied tensors once."""
    seen, total = set(), 0
    for key, tensor in state_dict.items():
        if key.endswith(".version") or not torch.is_floating_point(tensor):
            continue
        pointer = (tensor.untyped_storage().data_ptr(), tensor.storage_offset(), tuple(tensor.shape))
        if pointer in seen:
            continue
        seen.add(pointer)
        total += tensor.numel()
    return total


def _load_encoder_dir(srcdir: str):
    paths = encoder_dir_files(srcdir, ENCODER_DIR_HINT)
    import sentencepiece as spm
    from fairseq.data import Dictionary

    state = load_fairseq_checkpoint(paths[MODEL_FILE], required=("model", "cfg"))
    dictionary = Dictionary.load(paths[DICT_FILE])
    dictionary.add_symbol(MASK_SYMBOL)
    extra_symbols = _extra_symbols(state["cfg"])
    for symbol in extra_symbols:
        dictionary.add_symbol(symbol)
    processor = spm.SentencePieceProcessor(model_file=paths[SPM_FILE])
    rows = state["model"][VOCAB_SIZED_KEYS[0]].size(0)
    if rows != len(dictionary):
        raise InputError(f"{paths[MODEL_FILE]}: embedding has {rows} rows, {paths[DICT_FILE]} + <mask> "
                         f"+ extra symbols {extra_symbols} give {len(dictionary)}")
    spm_size = processor.get_piece_size()
    dict_pieces = len(dictionary) - len(FAIRSEQ_SPECIALS) - 1 - len(extra_symbols)
    if spm_size - SPM_SPECIALS != dict_pieces:
        raise InputError(f"{paths[SPM_FILE]}: {spm_size} pieces, {paths[DICT_FILE]} lists {dict_pieces} "
                         "(expected sentencepiece size - 3)")
    return state, dictionary, processor, extra_symbols


def _extra_symbols(cfg) -> List[str]:
    task = cfg.get("task") if isinstance(cfg, dict) else getattr(cfg, "task", None)
    spec = (task or {}).get("extra_special_symbols", "") if isinstance(task, dict) else \
        getattr(task, "extra_special_symbols", "")
    return [s.strip() for s in (spec or "").split(",") if s.strip()]


def _read_corpora(corpora: Sequence[str]) -> List[str]:
    lines = []
    for path in corpora:
        for _, text in iter_lines(path):
            text = text.strip()
            if text:
                lines.append(text)
    if not lines:
        raise InputError(f"no non-empty lines in {', '.join(corpora)}")
    return lines


def _encode(processor, lines: List[str]) -> List[List[str]]:
    pieces = []
    for start in range(0, len(lines), ENCODE_BATCH_LINES):
        pieces.extend(processor.encode(lines[start:start + ENCODE_BATCH_LINES], out_type=str))
    return pieces


def trim_vocab(srcdir: str, corpora: Sequence[str], destdir: str) -> TrimReport:
    """Write the trimmed copy of the encoder directory ``srcdir`` to ``destdir``."""
    import sentencepiece as spm
    from sentencepiece import sentencepiece_model_pb2 as model_pb2

    encoder_dir_files(srcdir, ENCODER_DIR_HINT)  # the directory's files exist, and the corpora
    lines = _read_corpora(corpora)  # have text, before the (large) checkpoint is loaded
    state, dictionary, processor, extra_symbols = _load_encoder_dir(srcdir)
    encoded = _encode(processor, lines)
    counts = collections.Counter(piece for pieces in encoded for piece in pieces)

    # sentencepiece ids to keep, in the original order (ids 0-2 are its specials)
    kept_spm_ids = [i for i in range(processor.get_piece_size())
                    if i < SPM_SPECIALS or processor.id_to_piece(i) in counts]
    proto = model_pb2.ModelProto()
    with open(os.path.join(srcdir, SPM_FILE), "rb") as handle:
        proto.ParseFromString(handle.read())
    kept_pieces = [proto.pieces[i] for i in kept_spm_ids]
    del proto.pieces[:]
    proto.pieces.extend(kept_pieces)
    proto.trainer_spec.vocab_size = len(kept_pieces)
    new_spm = proto.SerializeToString()
    new_processor = spm.SentencePieceProcessor(model_proto=new_spm)

    # fairseq rows: specials, kept pieces (sentencepiece id + 1), <mask>, extra symbols
    kept_rows = list(range(len(FAIRSEQ_SPECIALS))) + [i + 1 for i in kept_spm_ids[SPM_SPECIALS:]]
    kept_rows += [dictionary.index(MASK_SYMBOL)] + [dictionary.index(s) for s in extra_symbols]
    index = torch.tensor(kept_rows)

    model_state = state["model"]
    parameters_before = count_state_parameters(model_state)
    embed = model_state[VOCAB_SIZED_KEYS[0]]
    tied = VOCAB_SIZED_KEYS[1] in model_state and \
        model_state[VOCAB_SIZED_KEYS[1]].data_ptr() == embed.data_ptr()
    for key in VOCAB_SIZED_KEYS:
        if key in model_state:
            model_state[key] = model_state[key].index_select(0, index).clone()
    if tied:
        model_state[VOCAB_SIZED_KEYS[1]] = model_state[VOCAB_SIZED_KEYS[0]]
    parameters_after = count_state_parameters(model_state)

    os.makedirs(destdir, exist_ok=True)
    # each file complete or absent; model.pt, written last, is what a finished trim is known by
    with atomic_write(os.path.join(destdir, SPM_FILE), "wb") as out:
        out.write(new_spm)
    new_pieces = [new_processor.id_to_piece(i) for i in range(SPM_SPECIALS, new_processor.get_piece_size())]
    write_dict(new_pieces, os.path.join(destdir, DICT_FILE), counts)

    state["cfg"]["task"]["data"] = os.path.abspath(destdir)
    state.setdefault("extra_state", {})["xsl_trim"] = {
        "source": os.path.abspath(srcdir), "corpora": [os.path.abspath(c) for c in corpora],
        "vocab_before": len(dictionary), "vocab_after": len(kept_rows),
    }
    with atomic_paths(os.path.join(destdir, MODEL_FILE)) as (staged,):
        torch.save(state, staged)

    changed = _count_changed_lines(lines, encoded, new_processor, dictionary, new_pieces, kept_rows)
    report = TrimReport(
        destdir=destdir, vocab_before=len(dictionary), vocab_after=len(kept_rows),
        parameters_before=parameters_before, parameters_after=parameters_after,
        lines=len(lines), tokens=sum(counts.values()), changed_lines=changed,
    )
    logger.info(
        "trimmed %s -> %s: vocabulary %d -> %d, parameters %d -> %d (%d lines, %d tokens)",
        srcdir, destdir, report.vocab_before, report.vocab_after, parameters_before,
        parameters_after, report.lines, report.tokens,
    )
    if changed:
        logger.warning("%d of %d lines encode to different ids after trimming", changed, len(lines))
    return report


def _count_changed_lines(lines, encoded, new_processor, dictionary, new_pieces, kept_rows) -> int:
    """Lines whose fairseq ids under the trimmed model differ from the original ids."""
    new_index = {piece: i for i, piece in enumerate(new_pieces, start=len(FAIRSEQ_SPECIALS))}
    old_to_new = {old: new for new, old in enumerate(kept_rows)}
    unk = dictionary.unk()
    changed = 0
    for old_pieces, new_pieces_of_line in zip(encoded, _encode(new_processor, lines)):
        old_ids = [old_to_new[dictionary.index(p)] for p in old_pieces]
        new_ids = [new_index.get(p, unk) for p in new_pieces_of_line]
        changed += old_ids != new_ids
    return changed
