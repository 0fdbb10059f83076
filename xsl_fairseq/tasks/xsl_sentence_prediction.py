"""``xsl_sentence_prediction``: fairseq's ``sentence_prediction`` (XNLI, PAWS-X) for
models whose dictionary has extra special symbols (``--extra-special-symbols``).

Same data layout as fairseq's task (``input0/``, ``input1/``, ``label/``); the only
difference is that the symbols the pretrained model appended after ``<mask>`` are
appended here too, so its embedding matrix loads without a size mismatch.
"""
from dataclasses import dataclass, field

from fairseq.tasks import register_task
from fairseq.tasks.sentence_prediction import SentencePredictionConfig, SentencePredictionTask

from ..data.dictionary import add_special_symbols, parse_symbol_list


@dataclass
class XslSentencePredictionConfig(SentencePredictionConfig):
    extra_special_symbols: str = field(
        default="", metadata={"help": "symbols the pretrained model appended after <mask>, e.g. '[QUE]'"}
    )


@register_task("xsl_sentence_prediction", dataclass=XslSentencePredictionConfig)
class XslSentencePredictionTask(SentencePredictionTask):
    @classmethod
    def setup_task(cls, cfg, **kwargs):
        task = super().setup_task(cfg, **kwargs)
        add_special_symbols(task.dictionary, parse_symbol_list(cfg.extra_special_symbols))
        return task
