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
* **Task heads.** Fine-tuning tasks register named heads (:meth:`register_task_head`,
  the per-token analogue of RoBERTa's ``classification_heads``). Loading a checkpoint
  that lacks a registered head keeps the head's fresh initialisation; heads in the
  checkpoint that the current task did not register are dropped with a warning.
* **Representations for contrastive objectives.** :meth:`hidden_states` returns the
  embedding output and every layer (B x T x C); :meth:`pooled` averages a chosen
  layer over the real tokens (optionally one segment of a pair).
* **Imported encoders** (``xsl-prep import-encoder``). ``--layernorm-eps`` sets the
  epsilon of every LayerNorm of the encoder and LM head: BERT-style checkpoints such
  as multilingual-e5 use 1e-12 against fairseq's fixed 1e-5 (``xsl_e5_small`` sets
  it; on e5 the difference moves hidden states by up to ~2e-3 but sentence-embedding
  cosines by < 1e-6). ``--freeze-embeddings`` keeps the word embedding fixed; the
  LM head's output projection is the same tensor (tied), so it is frozen too, while
  the LM-head bias, dense layer and LayerNorm still train.
* **Training a subset.** ``--trainable-parameters REGEX`` freezes every parameter whose
  name (``model.named_parameters()``; task heads registered later included) does not match
  ``REGEX`` (``re.search``); ``'^encoder\\.lm_head\\.'`` trains only the LM head, e.g. to warm
  up an imported encoder's fresh MLM head before continued MLM. The tied output projection
  is the word embedding (named ``encoder.sentence_encoder.embed_tokens.weight``), so it
  follows that name, not ``lm_head``.
* **Precomputed input embeddings.** ``forward(..., token_embeddings=E)`` (B x T x C, before
  fairseq's embedding scale, positions and embedding LayerNorm) replaces the word-embedding
  lookup, through the model's own ``forward`` so DDP sees one forward; SALT's embedding
  mixup (``xsl_salt``) uses it. fairseq's ``RobertaEncoder.forward`` drops that argument.
"""
import logging
import re
from typing import List, Optional

import torch
import torch.nn as nn
from fairseq.models import register_model, register_model_architecture
from fairseq.models.roberta import RobertaModel
from fairseq.models.roberta.model import base_architecture as roberta_base_architecture
from fairseq.utils import safe_getattr

from ..modules.pooling import encoder_hidden_states, masked_mean, segment_mask

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

    def __init__(self, args, encoder):
        super().__init__(args, encoder)
        self.task_heads = nn.ModuleDict()
        self.trainable_pattern = None  # --trainable-parameters, compiled in build_model

    @staticmethod
    def add_args(parser):
        # No explicit ``default=`` below: fairseq parses model options with
        # ``argument_default=SUPPRESS``, so an option the user does not give stays unset and
        # the arch function's ``safe_getattr`` default applies. An explicit ``default=None``
        # would be kept on the Namespace and win over the arch (xsl_e5_small's eps 1e-12 was
        # lost that way); the build code reads every option with ``safe_getattr``.
        RobertaModel.add_args(parser)
        parser.add_argument(
            "--layernorm-eps", type=float, metavar="EPS",
            help="epsilon of every LayerNorm of the encoder and LM head (default: fairseq's "
            "1e-5; BERT-style checkpoints such as e5 were trained with 1e-12)",
        )
        parser.add_argument(
            "--freeze-embeddings", action="store_true",
            help="keep the word embedding fixed (saves its gradient and Adam state, most of "
            "e5-small's parameters); with the tied LM head this also freezes the output "
            "projection weight (its bias still trains)",
        )
        parser.add_argument(
            "--trainable-parameters", type=str, metavar="REGEX",
            help="train only the parameters whose name matches REGEX (re.search), freeze the "
            "rest; e.g. '^encoder\\.lm_head\\.' warms up the MLM head alone",
        )

    @classmethod
    def build_model(cls, args, task):
        model = super().build_model(args, task)
        eps = safe_getattr(args, "layernorm_eps", None)
        if eps is not None:
            # fairseq builds its LayerNorms with a fixed eps; set it after construction.
            for module in model.modules():
                if isinstance(module, nn.LayerNorm) or type(module).__name__ == "FusedLayerNorm":
                    module.eps = eps
        if safe_getattr(args, "freeze_embeddings", False):
            model.encoder.sentence_encoder.embed_tokens.weight.requires_grad_(False)
        pattern = safe_getattr(args, "trainable_parameters", None)
        if pattern:
            try:
                model.trainable_pattern = re.compile(pattern)
            except re.error as error:
                raise ValueError(f"--trainable-parameters {pattern!r}: not a regular expression ({error})")
            trained = model.apply_trainable_pattern()
            if not trained:
                raise ValueError(f"--trainable-parameters {pattern!r} matches no parameter of the model")
            logger.info("--trainable-parameters %r: training %d tensors (%s), the rest frozen", pattern,
                        len(trained), ", ".join(trained[:8]) + (" ..." if len(trained) > 8 else ""))
        return model

    def forward(self, src_tokens, features_only=False, return_all_hiddens=False,
                classification_head_name=None, token_embeddings=None, **kwargs):
        if token_embeddings is None:
            return super().forward(src_tokens, features_only, return_all_hiddens, classification_head_name, **kwargs)
        features, extra = self.encoder.extract_features(
            src_tokens, return_all_hiddens=return_all_hiddens, token_embeddings=token_embeddings)
        if classification_head_name is not None:
            return self.classification_heads[classification_head_name](features), extra
        if not features_only:
            features = self.encoder.output_layer(features, masked_tokens=kwargs.get("masked_tokens"))
        return features, extra

    def apply_trainable_pattern(self, prefix: str = "") -> List[str]:
        """Freeze the parameters (under ``prefix``) not matching ``--trainable-parameters``;
        returns the names that stay trainable."""
        trained = []
        for name, param in self.named_parameters():
            if name.startswith(prefix) and self.trainable_pattern is not None:
                param.requires_grad_(param.requires_grad and bool(self.trainable_pattern.search(name)))
                if param.requires_grad:
                    trained.append(name)
        return trained

    def register_task_head(self, name: str, head: nn.Module) -> nn.Module:
        """Attach ``head`` under ``task_heads.<name>`` unless one of that name exists."""
        if name not in self.task_heads:
            self.task_heads[name] = head
            self.apply_trainable_pattern(prefix=f"task_heads.{name}.")
        return self.task_heads[name]

    def _reconcile_task_heads(self, state_dict, prefix):
        head_prefix = prefix + "task_heads."
        current = self.task_heads.state_dict()
        for key in [k for k in state_dict if k.startswith(head_prefix)]:
            local = key[len(head_prefix):]
            if local not in current or current[local].shape != state_dict[key].shape:
                logger.warning("dropping %s from the checkpoint: not a head of this task", key)
                del state_dict[key]
        for local, value in current.items():
            if head_prefix + local not in state_dict:
                logger.info("initialising %s%s fresh (not in the checkpoint)", head_prefix, local)
                state_dict[head_prefix + local] = value

    def upgrade_state_dict_named(self, state_dict, name):
        super().upgrade_state_dict_named(state_dict, name)
        prefix = name + "." if name != "" else ""
        self._reconcile_task_heads(state_dict, prefix)
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
        return encoder_hidden_states(self, src_tokens, **kwargs)

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


@register_model_architecture("xsl_roberta", "xsl_e5_small")
def xsl_e5_small_architecture(args):
    """multilingual-e5-small: BERT-style post-LN, 12 layers, 384 hidden, 12 heads, FFN 1536,
    exact GELU, 512 positions, LayerNorm eps 1e-12.

    Weights come from ``xsl-prep import-encoder --from-e5``; the vocabulary (250,002 with
    ``<mask>``, fewer after ``xsl-prep trim-vocab``) from the directory's dict.txt.
    """
    args.encoder_layers = safe_getattr(args, "encoder_layers", 12)
    args.encoder_embed_dim = safe_getattr(args, "encoder_embed_dim", 384)
    args.encoder_ffn_embed_dim = safe_getattr(args, "encoder_ffn_embed_dim", 1536)
    args.encoder_attention_heads = safe_getattr(args, "encoder_attention_heads", 12)
    args.max_positions = safe_getattr(args, "max_positions", 512)
    args.activation_fn = safe_getattr(args, "activation_fn", "gelu")
    args.layernorm_eps = safe_getattr(args, "layernorm_eps", 1e-12)
    roberta_base_architecture(args)
