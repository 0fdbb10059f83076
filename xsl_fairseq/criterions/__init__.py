from . import xsl_masked_lm  # noqa: F401
