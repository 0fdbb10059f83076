from . import xsl_masked_lm, xsl_span_qa, xsl_token_labeling  # noqa: F401
from . import xsl_mlctl  # noqa: F401
from . import xsl_clism  # noqa: F401
from . import xsl_meta_mlm  # noqa: F401
from . import xsl_salt  # noqa: F401
from . import xsl_trelm_cdlm  # noqa: F401
