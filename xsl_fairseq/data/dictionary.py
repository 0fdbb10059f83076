"""Extra special symbols on top of a fairseq dictionary.

Order matters: fairseq's MLM tasks append ``<mask>`` after ``dict.txt``; extra
symbols (CLISM's ``[QUE]``, ...) are appended after that. Appending keeps every
pre-existing id unchanged, which is what lets :class:`XslRobertaModel` grow the
embedding of an official checkpoint by adding rows at the end.
"""
from typing import List

from fairseq.data import Dictionary

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


def load_dictionary(dict_path: str, extra_symbols: List[str] = ()) -> Dictionary:
    """``dict.txt`` + ``<mask>`` + extra symbols: the vocabulary every xsl task uses."""
    dictionary = Dictionary.load(dict_path)
    dictionary.add_symbol("<mask>")
    add_special_symbols(dictionary, list(extra_symbols))
    return dictionary
