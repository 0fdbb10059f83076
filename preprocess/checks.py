"""Up-front checks of user input: argparse types for numeric options and file checks that run
before any expensive work.

A wrong value or a broken file should fail in the first second with one line that names the
option or the file (and line), not after hours of tagging or binarising, and not with a
traceback from inside fairseq or sentencepiece (issue 16, item 4). Every failure here is an
:class:`preprocess.InputError` (the CLIs print it as one line and exit non-zero) or, for option
values, an ``argparse.ArgumentTypeError`` (argparse prints it with the option's name).
"""
import argparse
import os
from typing import Callable, Set

from . import InputError
from .text import iter_lines

# fairseq.data.Dictionary starts with these four; a dict.txt line repeating one is a duplicate
FAIRSEQ_DICTIONARY_SPECIALS = ("<s>", "<pad>", "</s>", "<unk>")
FAIRSEQ_OVERWRITE_FLAG = "#fairseq:overwrite"


# --------------------------------------------------------------------------- option types


def int_at_least(minimum: int) -> Callable[[str], int]:
    """argparse ``type``: an integer >= ``minimum``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            wanted = {0: "must not be negative", 1: "must be positive"}.get(minimum, f"must be at least {minimum}")
            raise argparse.ArgumentTypeError(f"{wanted}, got {value}")
        return value

    parse.__name__ = f"integer >= {minimum}"
    return parse


positive_int = int_at_least(1)
non_negative_int = int_at_least(0)


def float_between(low: float, high: float, low_inclusive: bool = True,
                  high_inclusive: bool = True) -> Callable[[str], float]:
    """argparse ``type``: a float in the interval ``low``..``high`` (ends as given)."""
    interval = f"{'[' if low_inclusive else '('}{low}, {high}{']' if high_inclusive else ')'}"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        above = value >= low if low_inclusive else value > low
        below = value <= high if high_inclusive else value < high
        if not (above and below):  # also rejects nan
            raise argparse.ArgumentTypeError(f"must lie in {interval}, got {text}")
        return value

    parse.__name__ = f"number in {interval}"
    return parse


def positive_float(text: str) -> float:
    """argparse ``type``: a finite float > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


# --------------------------------------------------------------------------- files


def check_input_files(paths, what: str = "input") -> None:
    """Every path exists and is a file (all of them before the first is read)."""
    for path in paths:
        if os.path.isdir(path):
            raise InputError(f"{path}: is a directory, expected a {what} file")
        if not os.path.isfile(path):
            raise InputError(f"{path}: {what} file not found")


def read_dictionary_symbols(path: str) -> Set[str]:
    """The symbols of a fairseq ``dict.txt`` after checking every line as fairseq's
    ``Dictionary.add_from_file`` reads it (``<token> <count> [#fairseq:overwrite]``, no
    duplicate without the flag, no repeat of ``<s> <pad> </s> <unk>``); an error names
    ``file:line``. fairseq itself would raise a ValueError without the line, or accept an
    empty file and map every piece to ``<unk>``."""
    if not os.path.isfile(path):
        raise InputError(f"{path}: dictionary not found (xsl-prep spm-train writes one)")
    symbols = set(FAIRSEQ_DICTIONARY_SPECIALS)
    entries = 0
    for number, line in iter_lines(path):
        text = line.rstrip()
        fields = text.rsplit(" ", 1)
        overwrite = len(fields) == 2 and fields[1] == FAIRSEQ_OVERWRITE_FLAG
        if overwrite:
            fields = fields[0].rsplit(" ", 1)
        if len(fields) != 2 or not fields[0] or not _is_int(fields[1]):
            raise InputError(f"{path}:{number}: expected '<token> <count>' (fairseq dict.txt), got {line!r}")
        token = fields[0]
        if token in symbols and not overwrite:
            raise InputError(f"{path}:{number}: duplicate entry {token!r} (fairseq accepts a repeat only "
                             f"with the {FAIRSEQ_OVERWRITE_FLAG} flag)")
        symbols.add(token)
        entries += 1
    if not entries:
        raise InputError(f"{path}: dictionary is empty")
    return symbols


def _is_int(text: str) -> bool:
    try:
        int(text)  # as fairseq reads the count
    except ValueError:
        return False
    return True


def check_dictionary(path: str) -> None:
    read_dictionary_symbols(path)


def check_sentencepiece_matches_dictionary(spm_path: str, dict_path: str) -> None:
    """The model's pieces are in the dictionary: a ``dict.txt`` of another model would turn
    most of the text into ``<unk>`` without any error. A few missing pieces are allowed (a
    dictionary built by fairseq-preprocess from data lacks unseen pieces); most missing is not."""
    from .spm import load_sentencepiece

    processor = load_sentencepiece(spm_path)
    symbols = read_dictionary_symbols(dict_path)
    regular = [processor.id_to_piece(i) for i in range(processor.get_piece_size())
               if not (processor.is_control(i) or processor.is_unknown(i))]
    missing = sum(piece not in symbols for piece in regular)
    if regular and missing * 2 > len(regular):
        raise InputError(f"{dict_path}: lacks {missing} of the {len(regular)} pieces of {spm_path}; "
                         "the dictionary and the sentencepiece model belong to different models")


def check_output_dir(path: str, option: str = "--destdir") -> None:
    """``path`` is a directory or can be made one (no file in the way, the nearest existing
    ancestor writable)."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise InputError(f"{path}: {option} exists and is not a directory")
    _check_creatable(path, option)


def check_output_file(path: str, option: str = "--output") -> None:
    """``path`` can be written as a file: not a directory, its directory exists or can be made."""
    if os.path.isdir(path):
        raise InputError(f"{path}: {option} is a directory, expected a file name")
    _check_creatable(os.path.dirname(os.path.abspath(path)), option)


def _check_creatable(directory: str, option: str) -> None:
    ancestor = os.path.abspath(directory)
    while not os.path.exists(ancestor):
        ancestor = os.path.dirname(ancestor)
    if not os.path.isdir(ancestor):
        raise InputError(f"{directory}: {option} cannot be created, {ancestor} is a file")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise InputError(f"{directory}: {option} cannot be written ({ancestor} is not writable)")
