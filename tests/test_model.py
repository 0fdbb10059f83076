"""xsl_roberta: registration, vocabulary growth for new special symbols, pooling."""
import argparse

import pytest
import torch
from fairseq.data import Dictionary
from fairseq.models import ARCH_MODEL_REGISTRY, MODEL_REGISTRY
from fairseq.criterions import CRITERION_REGISTRY
from fairseq.tasks import TASK_REGISTRY

import xsl_fairseq  # noqa: F401
from xsl_fairseq.data import QUE_SYMBOL, add_special_symbols
from xsl_fairseq.models.xsl_roberta import XslRobertaModel, xsl_roberta_tiny_architecture
from xsl_fairseq.modules import masked_mean, segment_mask


def registered_by_plugin(registry):
    return {name for name, cls in registry.items()
            if getattr(cls, "__module__", "").startswith("xsl_fairseq")}


def test_every_registered_name_is_prefixed():
    names = (registered_by_plugin(TASK_REGISTRY) | registered_by_plugin(MODEL_REGISTRY)
             | registered_by_plugin(CRITERION_REGISTRY))
    assert {"xsl_masked_lm", "xsl_roberta"} <= names
    archs = {a for a, m in ARCH_MODEL_REGISTRY.items() if m is XslRobertaModel}
    assert {"xsl_roberta_tiny", "xsl_roberta_base", "xsl_xlmr_base"} <= archs
    assert all(name.startswith("xsl_") for name in names | archs)


class TinyTask:
    def __init__(self, dictionary):
        self.source_dictionary = dictionary

    def max_positions(self):
        return 64


def make_dictionary(num_words=40, extra=()):
    dictionary = Dictionary()
    for i in range(num_words):
        dictionary.add_symbol(f"w{i}")
    dictionary.add_symbol("<mask>")
    add_special_symbols(dictionary, list(extra))
    return dictionary


def build_tiny(dictionary, seed=0):
    torch.manual_seed(seed)
    args = argparse.Namespace(max_positions=64)
    xsl_roberta_tiny_architecture(args)
    model = XslRobertaModel.build_model(args, TinyTask(dictionary))
    return model.eval()


def test_checkpoint_without_que_grows_embedding_and_lm_head():
    old = build_tiny(make_dictionary())
    new = build_tiny(make_dictionary(extra=[QUE_SYMBOL]), seed=1)
    old_state = {k: v.clone() for k, v in old.state_dict().items()}
    new.load_state_dict(old_state, strict=True)

    embed = new.encoder.sentence_encoder.embed_tokens.weight
    old_embed = old.encoder.sentence_encoder.embed_tokens.weight
    assert embed.shape[0] == old_embed.shape[0] + 1
    assert torch.equal(embed[:-1], old_embed)
    assert torch.allclose(embed[-1], old_embed.mean(dim=0))
    assert torch.allclose(new.encoder.lm_head.bias[-1], old.encoder.lm_head.bias.mean())
    # tied weights stay tied after loading
    assert new.encoder.lm_head.weight.data_ptr() == embed.data_ptr()
    # old tokens give identical hidden states
    tokens = torch.tensor([[0, 5, 6, 7, 2]])
    assert torch.allclose(old.hidden_states(tokens)[-1], new.hidden_states(tokens)[-1], atol=1e-6)


def test_checkpoint_with_larger_vocabulary_is_rejected():
    big = build_tiny(make_dictionary(num_words=50))
    small = build_tiny(make_dictionary(num_words=40))
    with pytest.raises(ValueError, match="different \\(larger\\) dictionary"):
        small.load_state_dict(big.state_dict())


def test_hidden_states_has_every_layer():
    model = build_tiny(make_dictionary())
    states = model.hidden_states(torch.tensor([[0, 5, 6, 2, 1]]))
    assert len(states) == 1 + 2 and states[0].shape == (1, 5, 128)


def test_segment_mask_and_pooling():
    bos, pad, eos = 0, 1, 2
    tokens = torch.tensor([[bos, 10, 11, eos, eos, 20, eos, pad],
                           [bos, 12, eos, eos, 21, 22, 23, eos]])
    first = segment_mask(tokens, 0, eos, pad, bos_idx=bos)
    second = segment_mask(tokens, 1, eos, pad, bos_idx=bos)
    assert first.long().tolist() == [[0, 1, 1, 0, 0, 0, 0, 0], [0, 1, 0, 0, 0, 0, 0, 0]]
    assert second.long().tolist() == [[0, 0, 0, 0, 0, 1, 0, 0], [0, 0, 0, 0, 1, 1, 1, 0]]
    with_special = segment_mask(tokens, 0, eos, pad, bos_idx=bos, include_special=True)
    assert with_special[0].long().tolist() == [1, 1, 1, 1, 0, 0, 0, 0]

    hidden = torch.arange(16, dtype=torch.float).view(2, 8, 1)
    assert masked_mean(hidden, second).squeeze(-1).tolist() == [5.0, (12 + 13 + 14) / 3]
    # an empty mask pools to zeros, not NaN
    assert masked_mean(hidden, torch.zeros(2, 8, dtype=torch.bool)).abs().sum() == 0


def test_pooled_matches_manual_mean_of_layer():
    model = build_tiny(make_dictionary())
    tokens = torch.tensor([[0, 5, 6, 2, 2, 7, 8, 9, 2], [0, 5, 2, 2, 7, 2, 1, 1, 1]])
    states = model.hidden_states(tokens)
    pooled = model.pooled(tokens, layer=1, segment=1, include_special=False)
    assert torch.allclose(pooled[0], states[1][0, 5:8].mean(0), atol=1e-6)
    assert torch.allclose(pooled[1], states[1][1, 4], atol=1e-6)
    whole = model.pooled(tokens, hidden_states=states)
    assert torch.allclose(whole[1], states[-1][1, :6].mean(0), atol=1e-6)
