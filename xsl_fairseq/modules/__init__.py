"""Math shared by several models and criterions (pooling, MLM loss, ...)."""
from .contrastive import contrastive_loss, cosine_logits, gather_across_ranks
from .heads import SpanPointerHead, TokenClassificationHead
from .mlm_loss import masked_lm_loss
from . import salt  # noqa: F401  (SALT self-augmentation math)
from .pooling import encoder_hidden_states, masked_mean, segment_mask

__all__ = [
    "SpanPointerHead",
    "contrastive_loss",
    "cosine_logits",
    "gather_across_ranks",
    "TokenClassificationHead",
    "encoder_hidden_states",
    "masked_lm_loss",
    "masked_mean",
    "segment_mask",
]
