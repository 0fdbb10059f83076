"""Extra special symbols on top of a fairseq dictionary.

Order matters: fairseq's MLM tasks append ``<mask>`` after ``dict.txt``; extra
symbols (CLISM's ``[QUE]``, ...) are appended after that. Appending keeps every
pre-existing id unchanged, which is what lets :class:`XslRobertaModel` grow the
embedding of an official checkpoint by adding rows at the end.
"""
import os
from typing import List

from fairseq.data import Dictionary

from preprocess import InputError
from preprocess.text import iter_lines

QUE_SYMBOL = "[QUE]"


def parse_symbol_list(spec: str) -> List[str]:
    """``"[QUE],<lang:en>"`` -> ``["[QUE]", "<lang:en>"]`` (empty string -> [])."""
    return [s.strip() for s in spec.split(",") if s.strip()]


def add_special_symbols(dictionary: Dictionary, symbols: List[str]) -> List[int]:
    """Append ``symbols`` to ``dictionary`` (idempotent) and return their ids."""
    ids = []
    for symbol in symbols:
        if any(ch.isspace() for ch in symbol):
            raise ValueError(f"special symbol {symbol!r} contains whitespace")
        ids.append(dictionary.add_symbol(symbol))
    return ids


def read_dictionary(dict_path: str) -> Dictionary:
    """fairseq's ``Dictionary.load`` with errors that name the file and line (fairseq's own
    message quotes the bad line only, from inside ``add_from_file``)."""
    if not os.path.isfile(dict_path):
        raise InputError(f"{dict_path}: dictionary not found")
    try:
        return Dictionary.load(dict_path)
    except Exception as err:  # fairseq raises ValueError, RuntimeError or a bare Exception
        first_line = {}
        for number, line in iter_lines(dict_path):  # find the line fairseq refused
            fields = line.rstrip().rsplit(" ", 1)
            overwrite = fields[-1] == "#fairseq:overwrite"
            if overwrite:
                fields = fields[0].rsplit(" ", 1)
            if len(fields) < 2 or not fields[1].lstrip("-").isdigit():
                raise InputError(f"{dict_path}:{number}: expected '<token> <count>', found {line!r}") from err
            if fields[0] in first_line and not overwrite:
                raise InputError(f"{dict_path}:{number}: {fields[0]!r} is already on line "
                                 f"{first_line[fields[0]]}") from err
            first_line[fields[0]] = number
        raise InputError(f"{dict_path}: not a fairseq dictionary ({err})") from err


def load_dictionary(dict_path: str, extra_symbols: List[str] = ()) -> Dictionary:
    """``dict.txt`` + ``<mask>`` + extra symbols: the vocabulary every xsl task uses."""
    dictionary = read_dictionary(dict_path)
    dictionary.add_symbol("<mask>")
    add_special_symbols(dictionary, list(extra_symbols))
    return dictionary
