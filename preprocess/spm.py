"""Joint sentencepiece models and the matching fairseq ``dict.txt``.

The dictionary follows XLM-R's convention: sentencepiece reserves ids 0-2 for
``<unk>``, ``<s>``, ``</s>``; ``dict.txt`` lists the remaining pieces in
sentencepiece order, so fairseq id = sentencepiece id + 1 (fairseq prepends
``<s> <pad> </s> <unk>``). Counts in ``dict.txt`` are real piece frequencies in the
training sample (fairseq uses them for ``--freq-weighted-replacement``).
"""
import collections
import logging
import os
import re
import shutil
import tempfile
from typing import List, Optional

import sentencepiece as spm

from . import InputError
from .atomic import atomic_paths, atomic_write
from .text import read_monolingual, write_lines

logger = logging.getLogger(__name__)

SPM_SPECIAL_PIECES = 3  # <unk>, <s>, </s>
# sentencepiece's own message when the corpus cannot give vocab_size pieces
_VOCAB_TOO_HIGH = re.compile(r"Vocabulary size too high \((\d+)\)\. Please set it to a value <= (\d+)")
# ... and when it is below the number of characters it must keep (plus <unk> <s> </s>)
_VOCAB_TOO_LOW = re.compile(r"Vocabulary size is smaller than required_chars\. (\d+) vs (\d+)")


def load_sentencepiece(model_path: str) -> spm.SentencePieceProcessor:
    """The model at ``model_path``; a missing file or one that is no sentencepiece model is an
    :class:`InputError` (sentencepiece itself raises ``RuntimeError: could not parse ModelProto``)."""
    if os.path.isdir(model_path) or not os.path.isfile(model_path):
        raise InputError(f"{model_path}: sentencepiece model not found")
    try:
        return spm.SentencePieceProcessor(model_file=model_path)
    except (RuntimeError, OSError) as err:
        raise InputError(f"{model_path}: not a sentencepiece model ({str(err).strip()})") from err


def train_sentencepiece(
    inputs: List[str],
    model_prefix: str,
    vocab_size: int,
    character_coverage: float = 0.9995,
    model_type: str = "unigram",
    max_lines_per_file: Optional[int] = None,
    seed: int = 1,
    threads: int = 2,
) -> str:
    """Train one model over all ``inputs`` and write ``<prefix>.model`` and ``dict.txt``.

    ``max_lines_per_file`` samples at most that many lines from each file, which
    keeps high-resource languages from crowding out the others (XLM-R samples
    languages with exponent 0.3 for the same reason).
    """
    lines = read_monolingual(inputs, dedupe=True, max_lines_per_file=max_lines_per_file, seed=seed)
    model_path = model_prefix + ".model"
    dict_path = os.path.join(os.path.dirname(os.path.abspath(model_prefix)), "dict.txt")
    os.makedirs(os.path.dirname(os.path.abspath(model_prefix)), exist_ok=True)
    # all three appear together, the model (what a finished stage is recognised by) last
    with tempfile.TemporaryDirectory() as tmp, \
            atomic_paths(dict_path, model_prefix + ".vocab", model_path) as (dict_tmp, vocab_tmp, model_tmp):
        sample_path = os.path.join(tmp, "sample.txt")
        write_lines(sample_path, lines)
        staged_prefix = os.path.join(tmp, "spm")
        try:
            spm.SentencePieceTrainer.train(
                input=sample_path,
                model_prefix=staged_prefix,
                vocab_size=vocab_size,
                character_coverage=character_coverage,
                model_type=model_type,
                num_threads=threads,
                # sentencepiece rejects an explicit size of 100 or fewer; 0 means every line too
                input_sentence_size=len(lines) if len(lines) > 100 else 0,
                shuffle_input_sentence=True,
                seed_sentencepiece_size=min(1000000, 10 * len(lines) + vocab_size),
                unk_id=0,
                bos_id=1,
                eos_id=2,
                pad_id=-1,
                minloglevel=2,
            )
        except RuntimeError as err:
            too_high = _VOCAB_TOO_HIGH.search(str(err))
            if too_high:
                raise InputError(
                    f"{', '.join(inputs)}: --vocab-size {vocab_size} is too large for {len(lines)} lines of text; "
                    f"sentencepiece can make at most {too_high.group(2)} pieces from them") from err
            too_low = _VOCAB_TOO_LOW.search(str(err))
            if too_low:
                raise InputError(
                    f"{', '.join(inputs)}: --vocab-size {vocab_size} is too small: the text needs at least "
                    f"{too_low.group(2)} pieces for its characters (or lower --character-coverage)") from err
            message = " ".join(str(err).split())
            raise InputError(f"sentencepiece training on {', '.join(inputs)} failed: {message}") from err
        processor = spm.SentencePieceProcessor(model_file=staged_prefix + ".model")
        counts = collections.Counter()
        for pieces in processor.encode(lines, out_type=str):
            counts.update(pieces)
        write_fairseq_dict(processor, counts, dict_tmp)
        shutil.move(staged_prefix + ".vocab", vocab_tmp)  # from the temporary directory: may cross file systems
        shutil.move(staged_prefix + ".model", model_tmp)
    logger.info(
        "sentencepiece model %s (%d pieces) and %s from %d lines",
        model_path, processor.get_piece_size(), dict_path, len(lines),
    )
    return model_path


def write_fairseq_dict(processor: spm.SentencePieceProcessor, counts, dict_path: str) -> None:
    with atomic_write(dict_path) as out:
        for piece_id in range(SPM_SPECIAL_PIECES, processor.get_piece_size()):
            piece = processor.id_to_piece(piece_id)
            out.write(f"{piece} {counts.get(piece, 0)}\n")


class SentencePieceEncoder:
    """Turns raw text into space-separated pieces, the input of fairseq-preprocess."""

    def __init__(self, model_path: str):
        self.processor = load_sentencepiece(model_path)

    def encode_lines(self, lines: List[str]) -> List[str]:
        return [" ".join(pieces) for pieces in self.processor.encode(lines, out_type=str)]
