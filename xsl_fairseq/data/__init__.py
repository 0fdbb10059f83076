"""Dataset and dictionary helpers shared by the tasks."""
from .dictionary import QUE_SYMBOL, add_special_symbols, load_dictionary, parse_symbol_list
from .features import IGNORE_LABEL, load_sequences, write_sequences

__all__ = [
    "IGNORE_LABEL",
    "QUE_SYMBOL",
    "add_special_symbols",
    "load_dictionary",
    "load_sequences",
    "parse_symbol_list",
    "write_sequences",
]
