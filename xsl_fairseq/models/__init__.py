from . import xsl_roberta  # noqa: F401
