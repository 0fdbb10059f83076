"""Math shared by several models and criterions (pooling, MLM loss, ...)."""
from .heads import SpanPointerHead, TokenClassificationHead
from .mlm_loss import masked_lm_loss
from .pooling import masked_mean, segment_mask

__all__ = [
    "SpanPointerHead",
    "TokenClassificationHead",
    "masked_lm_loss",
    "masked_mean",
    "segment_mask",
]
