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
"""
import os
from dataclasses import dataclass, field

from fairseq.data import RawLabelDataset
from fairseq.dataclass import FairseqDataclass
from fairseq.tasks import FairseqTask, register_task
from omegaconf import II, MISSING

from ..data.features import load_sequences
from ..modules.heads import SpanPointerHead
from .finetuning import load_task_dictionary, require_task_heads, token_input_dataset


@dataclass
class XslSpanQAConfig(FairseqDataclass):
    data: str = field(default=MISSING, metadata={"help": "directory with dict.txt and {split}.tokens/.spans"})
    extra_special_symbols: str = field(
        default="", metadata={"help": "symbols the pretrained model appended after <mask>, e.g. '[QUE]'"}
    )
    head_name: str = field(default="span_qa", metadata={"help": "name of the start/end head in the model"})
    seed: int = II("common.seed")


@register_task("xsl_span_qa", dataclass=XslSpanQAConfig)
class XslSpanQATask(FairseqTask):
    cfg: XslSpanQAConfig

    def __init__(self, cfg: XslSpanQAConfig, dictionary):
        super().__init__(cfg)
        self.dictionary = dictionary

    @classmethod
    def setup_task(cls, cfg: XslSpanQAConfig, **kwargs):
        return cls(cfg, load_task_dictionary(cfg))

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
        require_task_heads(model, "xsl_span_qa")
        model.register_task_head(self.cfg.head_name, SpanPointerHead(model.args.encoder_embed_dim))
        return model

    def max_positions(self):
        return None  # windows are cut to the model's limit when they are written

    @property
    def source_dictionary(self):
        return self.dictionary

    @property
    def target_dictionary(self):
        return self.dictionary
