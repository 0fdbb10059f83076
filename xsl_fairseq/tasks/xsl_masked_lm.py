"""``xsl_masked_lm``: fairseq's ``masked_lm`` task plus extra special symbols.

Identical data pipeline to ``masked_lm`` (``data-bin/mono`` from ``xsl-prep
binarize-mono``). The only addition is ``--extra-special-symbols``: symbols appended
to the dictionary after ``<mask>`` so that an MLM-pretrained checkpoint has the same
vocabulary as the method tasks (CLISM's ``[QUE]``) that continue from it.
"""
import logging
from dataclasses import dataclass, field

from fairseq.tasks import register_task
from fairseq.tasks.masked_lm import MaskedLMConfig, MaskedLMTask

from ..data.dictionary import add_special_symbols, parse_symbol_list, read_dictionary
from ..input_checks import InputCheckedTask, StartCheckpointConfig, require_data_file

logger = logging.getLogger(__name__)


@dataclass
class XslMaskedLMConfig(MaskedLMConfig, StartCheckpointConfig):
    extra_special_symbols: str = field(
        default="",
        metadata={
            "help": "comma-separated symbols appended to the dictionary after <mask>, "
            "e.g. '[QUE]' (they are never masked or predicted)"
        },
    )


@register_task("xsl_masked_lm", dataclass=XslMaskedLMConfig)
class XslMaskedLMTask(InputCheckedTask, MaskedLMTask):
    cfg: XslMaskedLMConfig
    mask_prob_may_be_zero = False  # fairseq's MaskTokensDataset asserts 0 < --mask-prob < 1

    def __init__(self, cfg: XslMaskedLMConfig, dictionary=None):
        super().__init__(cfg, dictionary)
        symbols = parse_symbol_list(cfg.extra_special_symbols)
        self.extra_symbol_ids = add_special_symbols(self.dictionary, symbols)
        if symbols:
            logger.info(
                "extra special symbols %s -> ids %s (dictionary: %d types)",
                symbols,
                self.extra_symbol_ids,
                len(self.dictionary),
            )

    @classmethod
    def load_dict(cls, cfg):
        """masked_lm's dictionary, with errors that name the data directory or the dict.txt line."""
        dictionary = read_dictionary(require_data_file(cfg.data, "dict.txt", "xsl-prep binarize-mono writes it"))
        logger.info("dictionary: %d types", len(dictionary))
        return dictionary
