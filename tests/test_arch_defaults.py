"""Every registered arch, built the way ``fairseq-train --arch X`` builds it, is the model its
docstring documents.

The path is fairseq's own: ``options.get_training_parser`` + ``parse_args_and_arch`` (model options
parsed with ``argument_default=SUPPRESS``, then the arch function), ``convert_namespace_to_omegaconf``,
``tasks.setup_task`` and ``task.build_model`` (what ``fairseq_cli.train.main`` does), so an option whose
argparse default shadows the arch's ``safe_getattr`` default (``--layernorm-eps`` once gave
``xsl_e5_small`` eps 1e-5 instead of 1e-12) shows up here. The checks read the built modules
(``nn.LayerNorm.eps``, ``fc1``, ``self_attn.num_heads``, the position table), not the args.
"""
from dataclasses import dataclass

import pytest
import torch.nn as nn
from fairseq import options, tasks, utils
from fairseq.data import Dictionary
from fairseq.dataclass.utils import convert_namespace_to_omegaconf
from fairseq.models import ARCH_MODEL_REGISTRY
from fairseq.modules import LearnedPositionalEmbedding

import xsl_fairseq
from xsl_fairseq.models.xsl_trelm import XslTrelmModel

USER_DIR = xsl_fairseq.__path__[0]
TOKENS_PER_SAMPLE = 128  # archs that do not fix --max-positions take the task's sample length


@dataclass(frozen=True)
class Documented:
    layers: int
    dim: int
    heads: int
    ffn: int
    max_positions: int  # rows of the learned position table = max_positions + padding_idx + 1
    layernorm_eps: float = 1e-5
    activation: str = "gelu"  # fairseq's "gelu" is the exact (erf) GELU
    normalize_before: bool = False  # post-LN, as RoBERTa / BERT
    layernorm_embedding: bool = True
    dropout: float = 0.1
    attention_dropout: float = 0.1
    activation_dropout: float = 0.0


ROBERTA_BASE = Documented(12, 768, 12, 3072, max_positions=TOKENS_PER_SAMPLE)
XLMR_BASE = Documented(12, 768, 12, 3072, max_positions=512)
ROBERTA_TINY = Documented(2, 128, 2, 512, max_positions=TOKENS_PER_SAMPLE)
E5_SMALL = Documented(12, 384, 12, 1536, max_positions=512, layernorm_eps=1e-12)

DOCUMENTED = {
    "xsl_roberta": ROBERTA_BASE,
    "xsl_roberta_base": ROBERTA_BASE,
    "xsl_xlmr_base": XLMR_BASE,
    "xsl_roberta_tiny": ROBERTA_TINY,
    "xsl_e5_small": E5_SMALL,
    "xsl_trelm": ROBERTA_BASE,
    "xsl_trelm_base": ROBERTA_BASE,
    "xsl_trelm_tiny": ROBERTA_TINY,
    "xsl_trelm_e5_small": E5_SMALL,
}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("arch-data")
    dictionary = Dictionary()
    for i in range(40):
        dictionary.add_symbol(f"w{i}")
    dictionary.add_symbol("<mask>")
    dictionary.save(str(root / "dict.txt"))
    return root


def build_like_fairseq_train(data_dir, arch, *extra):
    parser = options.get_training_parser()
    args = options.parse_args_and_arch(parser, [
        str(data_dir), "--user-dir", USER_DIR, "--task", "xsl_masked_lm", "--criterion", "xsl_masked_lm",
        "--arch", arch, "--tokens-per-sample", str(TOKENS_PER_SAMPLE), *extra])
    cfg = convert_namespace_to_omegaconf(args)
    task = tasks.setup_task(cfg.task)
    return task.build_model(cfg.model)


def test_every_plugin_arch_is_documented_here():
    plugin_archs = {arch for arch, model in ARCH_MODEL_REGISTRY.items()
                    if model.__module__.startswith("xsl_fairseq")}
    assert plugin_archs == set(DOCUMENTED)


@pytest.mark.parametrize("arch", sorted(DOCUMENTED))
def test_fairseq_train_builds_the_documented_model(data_dir, arch):
    want = DOCUMENTED[arch]
    model = build_like_fairseq_train(data_dir, arch)
    encoder = model.encoder.sentence_encoder
    layers = list(encoder.layers)
    if isinstance(model, XslTrelmModel):
        assert model.encoder.trilayer_index == want.layers // 2
        assert model.encoder.language_embeddings.num_embeddings == 2
        assert model.encoder.default_language_id == 1
        layers.append(model.encoder.trilayer)

    assert len(encoder.layers) == want.layers
    assert encoder.embed_tokens.embedding_dim == want.dim
    assert encoder.embed_scale == 1.0  # RoBERTa / BERT do not scale the word embeddings
    for layer in layers:
        assert layer.self_attn.num_heads == want.heads
        assert (layer.fc1.in_features, layer.fc1.out_features) == (want.dim, want.ffn)
        assert layer.activation_fn is utils.get_activation_fn(want.activation)
        assert layer.normalize_before is want.normalize_before
        assert layer.dropout_module.p == want.dropout
        assert layer.self_attn.dropout_module.p == want.attention_dropout
        assert layer.activation_dropout_module.p == want.activation_dropout
    assert model.encoder.lm_head.activation_fn is utils.get_activation_fn(want.activation)
    assert model.encoder.lm_head.weight is encoder.embed_tokens.weight  # tied output projection

    positions = encoder.embed_positions
    assert isinstance(positions, LearnedPositionalEmbedding)
    assert positions.padding_idx == encoder.padding_idx == 1
    assert positions.num_embeddings == want.max_positions + encoder.padding_idx + 1
    assert model.max_positions() == want.max_positions

    assert (encoder.layernorm_embedding is not None) is want.layernorm_embedding
    assert (encoder.layer_norm is not None) is want.normalize_before  # final LN only for pre-LN
    norms = [module for module in model.modules() if isinstance(module, nn.LayerNorm)]
    # two per layer, the embedding LayerNorm and the LM head's
    assert len(norms) == 2 * len(layers) + 2
    assert {norm.eps for norm in norms} == {want.layernorm_eps}


def test_command_line_options_still_win_over_the_arch(data_dir):
    model = build_like_fairseq_train(data_dir, "xsl_e5_small", "--layernorm-eps", "1e-6",
                                     "--encoder-layers", "2", "--dropout", "0.0")
    assert len(model.encoder.sentence_encoder.layers) == 2
    assert {m.eps for m in model.modules() if isinstance(m, nn.LayerNorm)} == {1e-6}
    assert model.encoder.sentence_encoder.layers[0].dropout_module.p == 0.0
    assert model.encoder.sentence_encoder.layers[0].fc1.out_features == 1536
