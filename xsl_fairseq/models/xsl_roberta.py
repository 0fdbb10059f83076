"""``xsl_roberta``: the RoBERTa / XLM-R encoder every method of this plugin builds on.

It is fairseq's :class:`RobertaModel` (same weights, same checkpoints) with two
additions the cross-lingual objectives need:

* **Growing vocabularies.** Tasks may append special symbols (CLISM's ``[QUE]``) to the
  dictionary. When a checkpoint trained without them is loaded (``--restore-file``,
  ``--finetune-from-model``, ``from_pretrained``), the token embedding, the tied
  LM-head weight and the LM-head bias get the missing rows appended instead of
  failing with a shape mismatch. New embedding rows are initialised to the mean of
  the existing rows (the choice of HF ``resize_token_embeddings(mean_resizing=True)``
  without the covariance noise: deterministic and inside the embedding
  distribution); new LM-head bias entries to the mean bias. Only *appending* is
  supported, because fairseq dictionaries only ever append; a checkpoint with more
  rows than the dictionary is an error.
* **Representations for contrastive objectives.** :meth:`hidden_states` returns the
  embedding output and every layer (B x T x C); :meth:`pooled` averages a chosen
  layer over the real tokens (optionally one segment of a pair).
"""
import logging
from typing import List, Optional

import torch
from fairseq.models import register_model, register_model_architecture
from fairseq.models.roberta import RobertaModel
from fairseq.models.roberta.model import base_architecture as roberta_base_architecture
from fairseq.utils import safe_getattr

from ..modules.pooling import masked_mean, segment_mask

logger = logging.getLogger(__name__)

# state-dict keys whose first dimension is the vocabulary
VOCAB_SIZED_KEYS = (
    "encoder.sentence_encoder.embed_tokens.weight",
    "encoder.lm_head.weight",
    "encoder.lm_head.bias",
)


def grow_vocab_rows(state_dict: dict, prefix: str, vocab_size: int) -> int:
    """Append rows to the vocabulary-sized tensors of ``state_dict`` (in place).

    Returns the number of rows added (0 when the sizes already match).
    """
    added = 0
    for key in VOCAB_SIZED_KEYS:
        full_key = prefix + key
        if full_key not in state_dict:
            continue
        tensor = state_dict[full_key]
        have = tensor.size(0)
        if have == vocab_size:
            continue
        if have > vocab_size:
            raise ValueError(
                f"checkpoint tensor {full_key} has {have} vocabulary rows but the "
                f"dictionary has only {vocab_size} symbols: the checkpoint was trained "
                "with a different (larger) dictionary; pass the dict.txt it came with"
            )
        new_rows = tensor.float().mean(dim=0, keepdim=True).to(tensor.dtype)
        new_rows = new_rows.expand(vocab_size - have, *tensor.shape[1:])
        state_dict[full_key] = torch.cat([tensor, new_rows], dim=0)
        added = vocab_size - have
    return added


@register_model("xsl_roberta")
class XslRobertaModel(RobertaModel):
    """RoBERTa/XLM-R encoder with vocabulary growth and pooled representations."""

    @staticmethod
    def add_args(parser):
        RobertaModel.add_args(parser)

    def upgrade_state_dict_named(self, state_dict, name):
        super().upgrade_state_dict_named(state_dict, name)
        prefix = name + "." if name != "" else ""
        vocab_size = self.encoder.sentence_encoder.embed_tokens.num_embeddings
        added = grow_vocab_rows(state_dict, prefix, vocab_size)
        if added:
            logger.info(
                "checkpoint vocabulary grown by %d rows (new symbols of the dictionary); "
                "new rows initialised to the mean embedding",
                added,
            )

    def hidden_states(self, src_tokens: torch.Tensor, **kwargs) -> List[torch.Tensor]:
        """Embedding output followed by the output of every layer, each B x T x C."""
        _, extra = self.encoder(
            src_tokens, features_only=True, return_all_hiddens=True, **kwargs
        )
        return [state.transpose(0, 1) for state in extra["inner_states"]]

    def pooled(
        self,
        src_tokens: torch.Tensor,
        layer: int = -1,
        segment: Optional[int] = None,
        include_special: bool = True,
        hidden_states: Optional[List[torch.Tensor]] = None,
    ) -> torch.Tensor:
        """Mean of layer ``layer`` (0 = embeddings, -1 = last) over real tokens.

        ``segment=None`` averages the whole input; ``segment=k`` only the k-th
        ``</s>``-separated segment. ``hidden_states`` may be passed to reuse one
        forward pass for several poolings.
        """
        if hidden_states is None:
            hidden_states = self.hidden_states(src_tokens)
        dictionary = self.encoder.dictionary
        if segment is None:
            mask = src_tokens.ne(dictionary.pad())
            if not include_special:
                mask &= src_tokens.ne(dictionary.bos()) & src_tokens.ne(dictionary.eos())
        else:
            mask = segment_mask(
                src_tokens,
                segment,
                separator_idx=dictionary.eos(),
                padding_idx=dictionary.pad(),
                bos_idx=dictionary.bos(),
                include_special=include_special,
            )
        return masked_mean(hidden_states[layer], mask)


@register_model_architecture("xsl_roberta", "xsl_roberta")
@register_model_architecture("xsl_roberta", "xsl_roberta_base")
def xsl_roberta_base_architecture(args):
    """RoBERTa-base shapes: 12 layers, 768 hidden, 12 heads, FFN 3072."""
    roberta_base_architecture(args)


@register_model_architecture("xsl_roberta", "xsl_xlmr_base")
def xsl_xlmr_base_architecture(args):
    """XLM-R base: RoBERTa-base shapes (12 x 768, 12 heads, FFN 3072, 514 positions).

    The 250k vocabulary comes from the checkpoint's dict.txt, so it is not set here.
    """
    args.max_positions = safe_getattr(args, "max_positions", 512)
    roberta_base_architecture(args)


@register_model_architecture("xsl_roberta", "xsl_roberta_tiny")
def xsl_roberta_tiny_architecture(args):
    """2 layers, 128 hidden, 2 heads, FFN 512: for CPU tests and the demo."""
    args.encoder_layers = safe_getattr(args, "encoder_layers", 2)
    args.encoder_embed_dim = safe_getattr(args, "encoder_embed_dim", 128)
    args.encoder_ffn_embed_dim = safe_getattr(args, "encoder_ffn_embed_dim", 512)
    args.encoder_attention_heads = safe_getattr(args, "encoder_attention_heads", 2)
    roberta_base_architecture(args)
