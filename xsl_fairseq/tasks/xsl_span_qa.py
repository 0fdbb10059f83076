"""``xsl_span_qa``: extractive QA fine-tuning, ``<s> question </s> passage </s>``.

Data directory (written by ``xsl-eval qa``, or by hand with
:func:`xsl_fairseq.data.write_sequences`)::

    dict.txt                      the pretrained model's dictionary
    {split}.tokens.{bin,idx}      token ids of one window (question + a passage stride)
    {split}.spans.{bin,idx}       [start, end] token positions of the answer in the window;
                                  [0, 0] (the <s> position) when the window has no answer,
                                  as in BERT's SQuAD v1.1 recipe

Decoding (best span with a maximum answer length) is done by ``xsl-eval qa``, which
keeps the token-to-character offsets beside the binarized windows.

``--que-mode`` is CLISM's fine-tuning input (Chen et al., NAACL 2022, Eq. 10): windows
``<s> question [QUE] </s> passage </s>``, scored by the pointer head W_s / W_e
(:class:`~xsl_fairseq.modules.heads.QueryPointerHead`) from the first ``[QUE]``'s state.
With ``--head-name clism_pointer`` the head pretrained by ``xsl_clism`` is fine-tuned;
a checkpoint without it starts the head fresh. ``[QUE]`` must be in the dictionary
(``--extra-special-symbols``).
"""
import os
from dataclasses import dataclass, field

from fairseq.data import RawLabelDataset
from fairseq.tasks import register_task
from omegaconf import II, MISSING

from preprocess import InputError

from ..data.dictionary import QUE_SYMBOL, parse_symbol_list
from ..data.features import load_sequences
from ..input_checks import StartCheckpointConfig
from ..modules.heads import QueryPointerHead, SpanPointerHead
from .finetuning import FeatureFinetuningTask, load_task_dictionary, token_input_dataset


@dataclass
class XslSpanQAConfig(StartCheckpointConfig):
    data: str = field(default=MISSING, metadata={"help": "directory with dict.txt and {split}.tokens/.spans"})
    extra_special_symbols: str = field(
        default="", metadata={"help": "symbols the pretrained model appended after <mask>, e.g. '[QUE]'"}
    )
    head_name: str = field(default="span_qa", metadata={"help": "name of the start/end head in the model"})
    que_mode: bool = field(
        default=False, metadata={"help": "windows carry [QUE] after the question; answer with CLISM's pointer "
                                         "head from its state (use --head-name clism_pointer)"})
    seed: int = II("common.seed")


@register_task("xsl_span_qa", dataclass=XslSpanQAConfig)
class XslSpanQATask(FeatureFinetuningTask):
    cfg: XslSpanQAConfig

    @classmethod
    def setup_task(cls, cfg: XslSpanQAConfig, **kwargs):
        task = cls(cfg, load_task_dictionary(cfg))
        task.que_idx = None
        if cfg.que_mode:
            if QUE_SYMBOL not in parse_symbol_list(cfg.extra_special_symbols):
                raise InputError(f"{os.path.join(cfg.data, 'dict.txt')}: --que-mode needs {QUE_SYMBOL} in the "
                                 f"dictionary; pass --extra-special-symbols '{QUE_SYMBOL}' (got "
                                 f"{cfg.extra_special_symbols!r})")
            task.que_idx = task.dictionary.index(QUE_SYMBOL)
        return task

    def load_dataset(self, split, epoch=1, combine=False, **kwargs):
        spans = load_sequences(os.path.join(self.cfg.data, f"{split}.spans"))
        starts = RawLabelDataset([int(span[0]) for span in spans])
        ends = RawLabelDataset([int(span[1]) for span in spans])
        self.datasets[split] = token_input_dataset(
            self.cfg, split, self.dictionary,
            {"start_positions": starts, "end_positions": ends}, shuffle=split == "train",
        )
        return self.datasets[split]

    def build_model(self, cfg, from_checkpoint=False):
        model = super().build_model(cfg, from_checkpoint)
        head_class = QueryPointerHead if self.cfg.que_mode else SpanPointerHead
        return self.attach_head(model, head_class(model.args.encoder_embed_dim))
