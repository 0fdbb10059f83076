"""``xsl_token_labeling``: one label per word (NER, POS) on sub-token inputs.

Data directory (written by ``xsl-eval ner`` / ``xsl-eval pos``)::

    dict.txt                      the pretrained model's dictionary
    labels.txt                    label names, one per line; line i is label id i
    {split}.tokens.{bin,idx}      <s> sub-tokens </s>
    {split}.labels.{bin,idx}      a label id per position, -1 where no label is trained
                                  (specials; non-first sub-tokens in first-sub-token mode)
"""
import os
from dataclasses import dataclass, field

from fairseq.data import RightPadDataset
from fairseq.tasks import register_task
from omegaconf import II, MISSING

from preprocess import InputError

from ..data.features import IGNORE_LABEL, load_sequences
from ..input_checks import StartCheckpointConfig
from ..modules.heads import TokenClassificationHead
from .finetuning import FeatureFinetuningTask, load_task_dictionary, token_input_dataset


def read_label_names(path):
    if not os.path.isfile(path):
        raise InputError(f"{path}: label list not found")
    with open(path, encoding="utf-8") as handle:
        names = [line.strip() for line in handle if line.strip()]
    if len(set(names)) != len(names):
        raise InputError(f"{path}: repeated label names")
    return names


@dataclass
class XslTokenLabelingConfig(StartCheckpointConfig):
    data: str = field(default=MISSING, metadata={"help": "directory with dict.txt, labels.txt, {split}.tokens/.labels"})
    extra_special_symbols: str = field(
        default="", metadata={"help": "symbols the pretrained model appended after <mask>, e.g. '[QUE]'"}
    )
    head_name: str = field(default="token_labeling", metadata={"help": "name of the per-token head"})
    head_dropout: float = field(default=0.1, metadata={"help": "dropout before the label projection"})
    seed: int = II("common.seed")


@register_task("xsl_token_labeling", dataclass=XslTokenLabelingConfig)
class XslTokenLabelingTask(FeatureFinetuningTask):
    cfg: XslTokenLabelingConfig

    def __init__(self, cfg: XslTokenLabelingConfig, dictionary, label_names):
        super().__init__(cfg, dictionary)
        self.label_names = label_names

    @classmethod
    def setup_task(cls, cfg: XslTokenLabelingConfig, **kwargs):
        labels = read_label_names(os.path.join(cfg.data, "labels.txt"))
        return cls(cfg, load_task_dictionary(cfg), labels)

    def load_dataset(self, split, epoch=1, combine=False, **kwargs):
        labels = load_sequences(os.path.join(self.cfg.data, f"{split}.labels"))
        self.datasets[split] = token_input_dataset(
            self.cfg, split, self.dictionary,
            {"target": RightPadDataset(labels, pad_idx=IGNORE_LABEL)}, shuffle=split == "train",
        )
        return self.datasets[split]

    def build_model(self, cfg, from_checkpoint=False):
        model = super().build_model(cfg, from_checkpoint)
        head = TokenClassificationHead(model.args.encoder_embed_dim, len(self.label_names), self.cfg.head_dropout)
        return self.attach_head(model, head)
