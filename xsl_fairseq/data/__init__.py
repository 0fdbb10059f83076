"""Dataset and dictionary helpers shared by the tasks."""
from .dictionary import QUE_SYMBOL, add_special_symbols, parse_symbol_list

__all__ = ["QUE_SYMBOL", "add_special_symbols", "parse_symbol_list"]
