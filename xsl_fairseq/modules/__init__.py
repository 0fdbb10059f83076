"""Math shared by several models and criterions (pooling, MLM loss, ...)."""
from .mlm_loss import masked_lm_loss
from .pooling import masked_mean, segment_mask

__all__ = ["masked_lm_loss", "masked_mean", "segment_mask"]
