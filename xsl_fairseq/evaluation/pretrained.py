"""The pretrained encoder that ``xsl-eval`` starts from: checkpoint, dictionary, tokenizer.

Accepted: any checkpoint of this plugin (``xsl_roberta`` family) and official fairseq
RoBERTa / XLM-R checkpoints. The dictionary and sentencepiece model are taken from the
flags, else from beside the checkpoint (``dict.txt``; ``sentencepiece.bpe.model`` or
``spm.model``), else from the checkpoint's training data directory (the layout that
``xsl-prep`` writes: ``data-bin/{dict.txt,spm.model}`` above ``data-bin/mono``).
"""
import logging
import os
from dataclasses import dataclass
from typing import List, Optional, Tuple

import sentencepiece as spm

from preprocess import InputError
from preprocess.checkpoints import check_dictionary_size, load_fairseq_checkpoint, require_encoder

from ..data.dictionary import load_dictionary, parse_symbol_list

logger = logging.getLogger(__name__)

SPM_NAMES = ("sentencepiece.bpe.model", "spm.model")


def _candidate_dirs(checkpoint: str, data_dir: Optional[str]) -> List[str]:
    dirs = [os.path.dirname(os.path.abspath(checkpoint))]
    if data_dir:
        for path in data_dir.split(":")[:1]:
            dirs += [os.path.abspath(path), os.path.dirname(os.path.abspath(path))]
    return dirs


def _find(names, dirs) -> Optional[str]:
    for directory in dirs:
        for name in names:
            path = os.path.join(directory, name)
            if os.path.isfile(path):
                return path
    return None


@dataclass
class PretrainedModel:
    checkpoint: str
    dict_path: str
    spm_path: str
    arch: str
    max_positions: int
    num_layers: int
    extra_special_symbols: str  # as the pretraining task appended them

    @classmethod
    def resolve(cls, checkpoint: str, dict_path: Optional[str] = None, spm_path: Optional[str] = None):
        from fairseq import checkpoint_utils
        from fairseq.utils import safe_getattr as get  # model configs may be Namespaces

        # the file, its configuration and its architecture are checked on a memory map first:
        # fairseq's loader reports a damaged or foreign file with a pickle / KeyError traceback
        require_encoder(load_fairseq_checkpoint(checkpoint, required=("model", "cfg"), mmap=True), checkpoint)
        state = checkpoint_utils.load_checkpoint_to_cpu(checkpoint)  # upgrades old 'args' checkpoints
        cfg = state.get("cfg")
        if cfg is None or cfg.get("model") is None:
            raise InputError(f"{checkpoint}: not a fairseq checkpoint (no model configuration)")
        model_cfg, task_cfg = cfg["model"], cfg.get("task")
        dirs = _candidate_dirs(checkpoint, get(task_cfg, "data", None))
        dict_path = dict_path or _find(["dict.txt"], dirs)
        spm_path = spm_path or _find(SPM_NAMES, dirs)
        if not dict_path or not os.path.isfile(dict_path):
            raise InputError(f"{checkpoint}: no dict.txt beside it or in its data directory; pass --dict")
        if not spm_path or not os.path.isfile(spm_path):
            raise InputError(f"{checkpoint}: no sentencepiece model beside it or in its data directory; pass --spm")
        arch = get(model_cfg, "arch", None) or get(model_cfg, "_name", None)
        positions = get(model_cfg, "max_positions", None) or get(model_cfg, "tokens_per_sample", None) or 512
        pretrained = cls(
            checkpoint=os.path.abspath(checkpoint),
            dict_path=os.path.abspath(dict_path),
            spm_path=os.path.abspath(spm_path),
            arch=arch,
            max_positions=int(positions),
            num_layers=int(get(model_cfg, "encoder_layers", 12)),
            extra_special_symbols=get(task_cfg, "extra_special_symbols", "") or "",
        )
        check_dictionary_size(state, checkpoint, len(pretrained.dictionary()), dict_path)
        logger.info("pretrained model: %s", pretrained)
        return pretrained

    def dictionary(self):
        return load_dictionary(self.dict_path, parse_symbol_list(self.extra_special_symbols))

    def fairseq_arch(self) -> str:
        """Official checkpoints (arch roberta*, xlmr*) fine-tune as the matching xsl arch."""
        if self.arch.startswith("xsl_"):
            return self.arch
        return "xsl_roberta_base" if "large" not in self.arch else self.arch


class TextEncoder:
    """sentencepiece pieces -> fairseq dictionary ids (no specials added)."""

    def __init__(self, spm_path: str, dictionary):
        try:
            self.processor = spm.SentencePieceProcessor(model_file=spm_path)
        except (OSError, RuntimeError) as err:  # sentencepiece's own message names no file
            raise InputError(f"{spm_path}: not a sentencepiece model ({str(err).splitlines()[0]})") from err
        self.dictionary = dictionary
        # fairseq id of every sentencepiece id, computed once
        self._id_map = [dictionary.index(self.processor.id_to_piece(i))
                        for i in range(self.processor.get_piece_size())]

    def encode(self, text: str) -> List[int]:
        return [self._id_map[i] for i in self.processor.encode(text)]

    def encode_batch(self, texts: List[str]) -> List[List[int]]:
        return [[self._id_map[i] for i in ids] for ids in self.processor.encode(texts)]

    def encode_with_offsets(self, text: str) -> Tuple[List[int], List[Tuple[int, int]]]:
        """Ids and the character span ``[begin, end)`` of ``text`` each piece covers."""
        proto = self.processor.encode(text, out_type="proto")
        raw = text.encode("utf-8")
        # byte offset -> character offset
        char_at_byte = [0] * (len(raw) + 1)
        position = 0
        for char_index, char in enumerate(text):
            width = len(char.encode("utf-8"))
            for b in range(position, position + width):
                char_at_byte[b] = char_index
            position += width
        char_at_byte[len(raw)] = len(text)
        ids, spans = [], []
        for piece in proto.pieces:
            ids.append(self._id_map[piece.id])
            spans.append((char_at_byte[piece.begin], char_at_byte[piece.end]))
        return ids, spans


def load_encoder_for_inference(pretrained: PretrainedModel):
    """The pretrained model (any RoBERTa-family checkpoint) in eval mode, with its task."""
    from fairseq import checkpoint_utils

    models, _, task = checkpoint_utils.load_model_ensemble_and_task(
        [pretrained.checkpoint], arg_overrides={"data": os.path.dirname(pretrained.dict_path)}
    )
    model = models[0].eval()
    return model, task

