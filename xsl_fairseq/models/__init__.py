from . import xsl_roberta  # noqa: F401
from . import xsl_trelm  # noqa: F401
