"""xsl_fairseq: cross-lingual pretraining methods as a fairseq ``--user-dir`` plugin.

fairseq auto-imports only ``tasks/`` and ``models/`` of a user dir, so every
sub-package is imported here explicitly.
"""
from . import compat, input_checks

compat.apply()
input_checks.install_excepthook()  # bad input to fairseq-train: one line, no traceback

from . import data, modules  # noqa: E402,F401
from . import criterions, models, tasks  # noqa: E402,F401

__version__ = "0.1.0"
