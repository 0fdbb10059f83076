"""``xsl-prep``: text preparation for xsl_fairseq (sentencepiece, binarisation, mining)."""


class InputError(ValueError):
    """Bad user input; the message names the file (and line) at fault."""
