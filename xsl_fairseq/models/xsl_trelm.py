"""``xsl_trelm``: the TreLM encoder (Li et al., *Cross-lingual Transferring of Pre-trained Contextualized
Language Models*, arXiv 2107.12627; official code agcbi2017/TreLM, ``trelm/trelm_roberta.py``).

An ``xsl_roberta`` encoder (so vocabulary growth, task heads, pooling and ``xsl-eval`` keep working) with
TreLM's **TRILayer**, one extra Transformer layer that runs just before backbone layer ``L/2`` (0-based;
the model has L+1 layers, L must be even):

* It is created as a **copy of backbone layer L/2** (also when an English checkpoint is loaded).
* A **language embedding** (``--trelm-num-languages`` rows, **zero-initialised**, so a loaded English model
  computes exactly what it computed before at step 0) is added at the input, before the embedding
  LayerNorm (as the official RoBERTa variant does; its BERT variant forgets to pass the ids, defect 3 of the
  notes), and again at the TRILayer.
* With an **ordering alignment** (B x T: for every target position the source position whose state it
  takes, ``-1`` = unaligned) the states entering the TRILayer are gathered into target order and length,
  ``h'[t] = h[a_t]``. Unaligned positions take the state of one pad slot appended to the source (the
  official convention; here the slot is a real pad position of the input, so the lower layers compute it
  like the official ``[PAD]`` token, and no real token attends to it). Then
  ``h'' = h' + LangEmb(target language) + PosEmb(target positions)`` (the model's own position table,
  positions of the target order; a plain sum, no LayerNorm, as in the code) goes through the TRILayer,
  and the **target-side padding mask** (``target_padding_mask``) is used by the TRILayer *and every layer
  above it*. The official code passes an all-ones target mask to the TRILayer and the *source* mask to the
  upper layers (defects 1 and 2; harmless there only because it pads everything to 512);
  ``--trelm-compat-mask`` reproduces that for comparison: no mask in the TRILayer, the source padding mask
  cut or extended (extended positions count as padding) to the target length above it.
* Without an alignment (monolingual MLM, fine-tuning, ``xsl-eval``) the TRILayer is an ordinary extra
  layer given the current language's embedding and the input positions; the language defaults to
  ``--trelm-language-id`` (1, the new language, as in the official code's default ``lang_ids=1``).

Checkpoints: ``upgrade_state_dict_named`` maps an English ``xsl_roberta`` / official RoBERTa / XLM-R state
dict onto this model: the TRILayer is copied from layer L/2 of that checkpoint and the language embedding
starts at zero. The encoder carries a ``trelm_version`` buffer (:data:`TRELM_STATE_VERSION`); a checkpoint
without it is an English one, a newer version is refused.
"""
import copy
import logging
from typing import Dict, List, Optional

import torch
import torch.nn as nn
from fairseq.models import FairseqEncoder, register_model, register_model_architecture
from fairseq.models.roberta.model import RobertaEncoder
from fairseq.utils import safe_getattr

from .xsl_roberta import (
    XslRobertaModel,
    xsl_e5_small_architecture,
    xsl_roberta_base_architecture,
    xsl_roberta_tiny_architecture,
)

logger = logging.getLogger(__name__)

TRELM_STATE_VERSION = 1
UNALIGNED = -1  # ordering-alignment value of a target position without a source link

# parameter groups of TreLM's staged training (see trelm_parameter_groups)
PARAMETER_GROUPS = ("embeddings", "lower", "trilayer", "upper", "head")


def gather_to_target_order(states: torch.Tensor, alignment: torch.Tensor, pad_slot: int) -> torch.Tensor:
    """``out[t, b] = states[alignment[b, t], b]`` for T x B x C ``states`` (fairseq's time-major layout);
    ``alignment`` is B x T' with source positions, :data:`UNALIGNED` entries take ``states[pad_slot]``.

    Many-to-one links (several target positions, one source position) copy the same state; one
    target position has exactly one source, so one-to-many links must be resolved before (the data
    keeps the last link, as the official code does).
    """
    index = alignment.masked_fill(alignment.eq(UNALIGNED), pad_slot)
    if index.numel() and (int(index.min()) < 0 or int(index.max()) >= states.size(0)):
        raise ValueError(
            f"ordering alignment points outside the source (positions 0..{states.size(0) - 1}, "
            f"got {int(index.min())}..{int(index.max())})"
        )
    index = index.t().unsqueeze(-1).expand(-1, -1, states.size(-1))  # T' x B x C
    return states.gather(0, index)


def _language_options(args):
    """(number of languages, default language id); configs of older runs may lack the options."""
    return (int(safe_getattr(args, "trelm_num_languages", None) or 2),
            int(safe_getattr(args, "trelm_language_id", None) if safe_getattr(args, "trelm_language_id", None)
                is not None else 1))


def _as_language_ids(ids, batch_size: int, length: int, default: int, device) -> torch.Tensor:
    """``None`` / an int / B / B x 1 / B x T language ids -> B x T."""
    if ids is None:
        ids = default
    if isinstance(ids, int):
        return torch.full((batch_size, length), ids, dtype=torch.long, device=device)
    ids = ids.to(device=device, dtype=torch.long)
    if ids.dim() == 1:
        ids = ids.unsqueeze(1)
    return ids.expand(batch_size, length)


class TrelmEncoder(RobertaEncoder):
    """RoBERTa encoder + TRILayer + language embedding (see the module docstring)."""

    def __init__(self, args, dictionary, base: Optional[RobertaEncoder] = None):
        if base is None:
            super().__init__(args, dictionary)
        else:
            # adopt the modules of an encoder xsl_roberta already built, so that its build-time
            # options (LayerNorm eps, embedding freezing, ...) carry over unchanged
            FairseqEncoder.__init__(self, dictionary)
            self.args = base.args
            self.sentence_encoder = base.sentence_encoder
            self.lm_head = base.lm_head
        num_layers = len(self.sentence_encoder.layers)
        if num_layers < 2 or num_layers % 2:
            raise ValueError(f"xsl_trelm needs an even number of encoder layers >= 2 (got {num_layers}): "
                             "the TRILayer sits before layer L/2")
        self.trilayer_index = num_layers // 2
        self.trilayer = copy.deepcopy(self.sentence_encoder.layers[self.trilayer_index])
        languages, self.default_language_id = _language_options(args)
        self.language_embeddings = nn.Embedding(languages, args.encoder_embed_dim)
        self.reset_trelm_parameters()
        self.compat_mask = bool(safe_getattr(args, "trelm_compat_mask", False))
        self.register_buffer("trelm_version", torch.tensor([TRELM_STATE_VERSION]))

    def reset_trelm_parameters(self):
        """TRILayer = a copy of backbone layer L/2, language embedding = 0."""
        self.trilayer.load_state_dict(self.sentence_encoder.layers[self.trilayer_index].state_dict())
        nn.init.zeros_(self.language_embeddings.weight)

    def forward(self, src_tokens, features_only=False, return_all_hiddens=False, masked_tokens=None, **kwargs):
        x, extra = self.extract_features(src_tokens, return_all_hiddens=return_all_hiddens, **kwargs)
        if not features_only:
            x = self.output_layer(x, masked_tokens=masked_tokens)
        return x, extra

    def extract_features(
        self,
        src_tokens,
        return_all_hiddens: bool = False,
        lang_ids=None,
        tlayer_lang_ids=None,
        ordering_alignment: Optional[torch.Tensor] = None,
        target_padding_mask: Optional[torch.Tensor] = None,
        **unused,
    ):
        """Features B x T x C (T = the target length when ``ordering_alignment`` is given) and
        ``inner_states`` (embedding output, then every layer including the TRILayer, T x B x C).

        ``lang_ids``: language of the input (int, B, B x 1 or B x T); ``tlayer_lang_ids``: language given
        to the TRILayer (defaults to ``lang_ids``); ``ordering_alignment``: B x T' source positions
        (:data:`UNALIGNED` = none) of the ``src_tokens`` row; ``target_padding_mask``: B x T' (True = pad).
        """
        encoder = self.sentence_encoder
        pad = encoder.padding_idx
        if ordering_alignment is not None:
            # the appended pad slot that unaligned target positions read
            pad_slot = src_tokens.size(1)
            src_tokens = torch.cat([src_tokens, src_tokens.new_full((src_tokens.size(0), 1), pad)], dim=1)
        batch_size, length = src_tokens.shape
        lang_ids = _as_language_ids(lang_ids, batch_size, length, self.default_language_id, src_tokens.device)
        padding_mask = src_tokens.eq(pad)
        token_embedding = encoder.embed_tokens(src_tokens) + self.language_embeddings(lang_ids) / encoder.embed_scale
        x, _ = encoder.forward_embedding(src_tokens, token_embedding)
        x = x * (1 - padding_mask.unsqueeze(-1).type_as(x))
        x = x.transpose(0, 1)  # T x B x C
        states = [x] if return_all_hiddens else []

        for index, layer in enumerate(encoder.layers):
            if index == self.trilayer_index:
                x, padding_mask, trilayer_mask = self._enter_trilayer(
                    x, src_tokens, padding_mask, lang_ids, tlayer_lang_ids, ordering_alignment,
                    target_padding_mask, pad_slot if ordering_alignment is not None else None)
                x = self._run_layer(self.trilayer, x, trilayer_mask)
                if return_all_hiddens:
                    states.append(x)
            x = self._run_layer(layer, x, padding_mask)
            if return_all_hiddens:
                states.append(x)
        if encoder.layer_norm is not None:
            x = encoder.layer_norm(x)
        return x.transpose(0, 1), {"inner_states": states if return_all_hiddens else None,
                                   "padding_mask": padding_mask}

    @staticmethod
    def _run_layer(layer, x, padding_mask):
        out = layer(x, encoder_padding_mask=padding_mask if padding_mask is not None and padding_mask.any() else None)
        return out[0] if isinstance(out, tuple) else out

    def _enter_trilayer(self, x, src_tokens, padding_mask, lang_ids, tlayer_lang_ids, alignment,
                        target_padding_mask, pad_slot):
        """(TRILayer input, padding mask of the layers above it, padding mask of the TRILayer)."""
        encoder = self.sentence_encoder
        if alignment is None:
            positions = encoder.embed_positions(src_tokens) if encoder.embed_positions is not None else None
            target_lang = lang_ids if tlayer_lang_ids is None else _as_language_ids(
                tlayer_lang_ids, *src_tokens.shape, self.default_language_id, src_tokens.device)
            upper_mask = trilayer_mask = padding_mask
        else:
            batch_size, target_length = alignment.shape
            if target_padding_mask is None:
                target_padding_mask = alignment.new_zeros(alignment.shape, dtype=torch.bool)
            x = gather_to_target_order(x, alignment, pad_slot)
            target_lang = _as_language_ids(lang_ids[:, :1] if tlayer_lang_ids is None else tlayer_lang_ids,
                                           batch_size, target_length, self.default_language_id, x.device)
            positions = None
            if encoder.embed_positions is not None:
                # positions of the target order: stand-in tokens that are pad exactly where the target is
                target_stand_in = alignment.new_full(alignment.shape, encoder.padding_idx + 1)
                positions = encoder.embed_positions(target_stand_in.masked_fill(target_padding_mask,
                                                                                encoder.padding_idx))
            if self.compat_mask:
                trilayer_mask = None
                source_mask = padding_mask[:, :pad_slot]
                if source_mask.size(1) >= target_length:
                    upper_mask = source_mask[:, :target_length]
                else:
                    upper_mask = torch.cat([source_mask, source_mask.new_ones(
                        batch_size, target_length - source_mask.size(1))], dim=1)
            else:
                upper_mask = trilayer_mask = target_padding_mask
        x = x + self.language_embeddings(target_lang).transpose(0, 1).type_as(x)
        if positions is not None:
            x = x + positions.transpose(0, 1).type_as(x)
        if upper_mask is not None:
            x = x * (1 - upper_mask.t().unsqueeze(-1).type_as(x))
        return x, upper_mask, trilayer_mask


@register_model("xsl_trelm")
class XslTrelmModel(XslRobertaModel):
    """``xsl_roberta`` with TreLM's TRILayer and language embedding (see the module docstring)."""

    def __init__(self, args, encoder):
        if not isinstance(encoder, TrelmEncoder):
            encoder = TrelmEncoder(args, encoder.dictionary, base=encoder)
        super().__init__(args, encoder)
        # RobertaModel.__init__ re-initialised every module (init_bert_params), the TRILayer included
        self.encoder.reset_trelm_parameters()

    @staticmethod
    def add_args(parser):
        XslRobertaModel.add_args(parser)
        parser.add_argument("--trelm-num-languages", type=int, metavar="N",
                            help="rows of the language embedding (default 2: 0 = English, 1 = the new language)")
        parser.add_argument("--trelm-language-id", type=int, metavar="ID",
                            help="language id used when a batch gives none (fine-tuning, xsl-eval; default 1, "
                                 "the new language, as the official code)")
        parser.add_argument("--trelm-compat-mask", action="store_true",
                            help="reproduce the official masks for comparison: no padding mask in the TRILayer, "
                                 "the source padding mask in the layers above it")

    @classmethod
    def build_model(cls, args, task):
        languages, language_id = _language_options(args)
        if not 0 <= language_id < languages:
            raise ValueError(f"--trelm-language-id {language_id} is not a language id "
                             f"(0..{languages - 1}, --trelm-num-languages {languages})")
        return super().build_model(args, task)

    def trelm_parameter_groups(self) -> Dict[str, List[nn.Parameter]]:
        """TreLM's parameter groups, each parameter in exactly one: ``embeddings`` (word, position,
        embedding LayerNorm, language), ``lower`` (backbone layers < L/2), ``trilayer``, ``upper``
        (layers >= L/2 and a final LayerNorm), ``head`` (LM head, classification heads, task heads;
        the tied output projection is the word embedding, so it counts there)."""
        encoder = self.encoder
        sentence = encoder.sentence_encoder
        groups = {name: [] for name in PARAMETER_GROUPS}
        owner = {}
        for name, param in self.named_parameters():  # named_parameters lists a tied tensor once
            owner[id(param)] = name
        for layer_index, layer in enumerate(sentence.layers):
            group = "lower" if layer_index < encoder.trilayer_index else "upper"
            groups[group].extend(layer.parameters())
        groups["trilayer"].extend(encoder.trilayer.parameters())
        if sentence.layer_norm is not None:
            groups["upper"].extend(sentence.layer_norm.parameters())
        seen = {id(p) for params in groups.values() for p in params}
        for param in self.parameters():
            if id(param) in seen:
                continue
            name = owner[id(param)]
            group = "head" if (".lm_head." in "." + name or name.startswith(("classification_heads", "task_heads"))) \
                else "embeddings"
            groups[group].append(param)
            seen.add(id(param))
        return groups

    def upgrade_state_dict_named(self, state_dict, name):
        prefix = name + "." if name != "" else ""
        version_key = prefix + "encoder.trelm_version"
        version = int(state_dict[version_key].item()) if version_key in state_dict else 0
        if version > TRELM_STATE_VERSION:
            raise ValueError(f"checkpoint has xsl_trelm state version {version}; this code reads up to "
                             f"{TRELM_STATE_VERSION} (update xsl_fairseq)")
        # the parent's upgrade renames legacy keys (decoder -> encoder, emb_layer_norm) first
        super().upgrade_state_dict_named(state_dict, name)
        if version == 0:
            source = f"{prefix}encoder.sentence_encoder.layers.{self.encoder.trilayer_index}."
            copied = 0
            for key in [k for k in state_dict if k.startswith(source)]:
                state_dict[prefix + "encoder.trilayer." + key[len(source):]] = state_dict[key].clone()
                copied += 1
            if not copied:
                raise ValueError(f"checkpoint has no layer {self.encoder.trilayer_index} "
                                 f"({source}*) to initialise the TRILayer from")
            state_dict[prefix + "encoder.language_embeddings.weight"] = torch.zeros_like(
                self.encoder.language_embeddings.weight)
            state_dict[version_key] = self.encoder.trelm_version.clone()
            logger.info("English checkpoint mapped onto xsl_trelm: TRILayer copied from layer %d, "
                        "language embedding (%d languages) zero", self.encoder.trilayer_index,
                        self.encoder.language_embeddings.num_embeddings)


def trelm_defaults(args):
    args.trelm_num_languages = safe_getattr(args, "trelm_num_languages", 2)
    args.trelm_language_id = safe_getattr(args, "trelm_language_id", 1)
    args.trelm_compat_mask = safe_getattr(args, "trelm_compat_mask", False)


@register_model_architecture("xsl_trelm", "xsl_trelm")
@register_model_architecture("xsl_trelm", "xsl_trelm_base")
def xsl_trelm_base_architecture(args):
    """RoBERTa-base backbone (12 layers: TRILayer before layer 6)."""
    trelm_defaults(args)
    xsl_roberta_base_architecture(args)


@register_model_architecture("xsl_trelm", "xsl_trelm_tiny")
def xsl_trelm_tiny_architecture(args):
    """xsl_roberta_tiny backbone (2 x 128: TRILayer before layer 1): CPU tests and the recipe."""
    trelm_defaults(args)
    xsl_roberta_tiny_architecture(args)


@register_model_architecture("xsl_trelm", "xsl_trelm_e5_small")
def xsl_trelm_e5_small_architecture(args):
    """multilingual-e5-small backbone (12 x 384: TRILayer before layer 6)."""
    trelm_defaults(args)
    xsl_e5_small_architecture(args)
