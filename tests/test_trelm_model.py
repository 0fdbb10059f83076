"""xsl_trelm: the TRILayer gather, target masks in every upper layer, loading English checkpoints."""
import argparse

import pytest
import torch
from fairseq.models import ARCH_MODEL_REGISTRY

import xsl_fairseq  # noqa: F401
from xsl_fairseq.models.xsl_roberta import XslRobertaModel, xsl_roberta_tiny_architecture
from xsl_fairseq.models.xsl_trelm import (
    UNALIGNED,
    XslTrelmModel,
    gather_to_target_order,
    xsl_trelm_tiny_architecture,
)

from test_model import TinyTask, make_dictionary


def build(cls, arch, dictionary, layers=4, seed=0, **overrides):
    torch.manual_seed(seed)
    args = argparse.Namespace(max_positions=64, encoder_layers=layers, dropout=0.0, attention_dropout=0.0,
                              **overrides)
    arch(args)
    return cls.build_model(args, TinyTask(dictionary)).eval()


def test_archs_registered():
    archs = {a for a, m in ARCH_MODEL_REGISTRY.items() if m is XslTrelmModel}
    assert {"xsl_trelm_tiny", "xsl_trelm_base", "xsl_trelm_e5_small"} <= archs


def test_gather_many_to_one_one_to_many_and_unaligned_by_hand():
    # source states: 4 positions (the last one is the appended pad slot), batch 2, dim 3
    states = torch.arange(4 * 2 * 3, dtype=torch.float).view(4, 2, 3)
    alignment = torch.tensor([
        [2, 0, 0, UNALIGNED, 1],  # row 0: positions 1 and 2 both read source 0 (one source -> many targets)
        [1, 1, UNALIGNED, 2, 0],  # row 1: target 0 and 1 both read source 1; target 2 is unaligned
    ])
    out = gather_to_target_order(states, alignment, pad_slot=3)
    expected = torch.stack([
        torch.stack([states[2, 0], states[0, 0], states[0, 0], states[3, 0], states[1, 0]]),
        torch.stack([states[1, 1], states[1, 1], states[3, 1], states[2, 1], states[0, 1]]),
    ]).transpose(0, 1)
    assert out.shape == (5, 2, 3)
    assert torch.equal(out, expected)
    with pytest.raises(ValueError, match="outside the source"):
        gather_to_target_order(states, torch.tensor([[4, 0]]), pad_slot=3)


def trelm_inputs(dictionary):
    src = torch.tensor([[0, 5, 6, 7, 2], [0, 8, 9, 2, 1]])  # <s> ... </s>, row 1 right-padded
    # target lengths 6 and 4; row 1 padded to 6
    alignment = torch.tensor([[0, 3, 1, 1, UNALIGNED, 4], [0, 2, 1, 3, 0, 0]])
    target_padding = torch.tensor([[False] * 6, [False] * 4 + [True] * 2])
    return src, alignment, target_padding


def capture_masks(model):
    """encoder_padding_mask handed to each layer (TRILayer under the key 'trilayer')."""
    seen, handles = {}, []
    encoder = model.encoder.sentence_encoder
    modules = {f"layer{i}": layer for i, layer in enumerate(encoder.layers)}
    modules["trilayer"] = model.encoder.trilayer
    for name, module in modules.items():
        def hook(mod, args, kwargs, name=name):
            seen[name] = (kwargs.get("encoder_padding_mask"), args[0].detach().clone())
        handles.append(module.register_forward_pre_hook(hook, with_kwargs=True))
    return seen, handles


def test_target_mask_reaches_trilayer_and_every_upper_layer():
    dictionary = make_dictionary()
    model = build(XslTrelmModel, xsl_trelm_tiny_architecture, dictionary)
    src, alignment, target_padding = trelm_inputs(dictionary)
    seen, handles = capture_masks(model)
    features, _ = model(src, features_only=True, ordering_alignment=alignment, target_padding_mask=target_padding,
                        lang_ids=0, tlayer_lang_ids=1)
    assert features.shape == (2, 6, 128)
    source_mask = torch.cat([src.eq(dictionary.pad()), torch.ones(2, 1, dtype=torch.bool)], dim=1)  # + pad slot
    for i in range(2):  # lower layers: the source mask (with the pad slot)
        assert torch.equal(seen[f"layer{i}"][0], source_mask)
    for name in ["trilayer", "layer2", "layer3"]:  # the TRILayer and every layer above it
        assert torch.equal(seen[name][0], target_padding), name
    for h in handles:
        h.remove()
    # padded target positions do not influence the real ones
    changed = alignment.clone()
    changed[1, 4:] = torch.tensor([2, UNALIGNED])
    features2, _ = model(src, features_only=True, ordering_alignment=changed, target_padding_mask=target_padding)
    features1, _ = model(src, features_only=True, ordering_alignment=alignment, target_padding_mask=target_padding)
    assert torch.allclose(features1[1, :4], features2[1, :4], atol=1e-5)
    # ... while without the target mask the same change would leak into them
    unmasked1, _ = model(src, features_only=True, ordering_alignment=alignment)
    unmasked2, _ = model(src, features_only=True, ordering_alignment=changed)
    assert not torch.allclose(unmasked1[1, :4], unmasked2[1, :4], atol=1e-3)


def test_trilayer_input_is_gathered_lower_output_plus_target_positions():
    dictionary = make_dictionary()
    model = build(XslTrelmModel, xsl_trelm_tiny_architecture, dictionary)
    src, alignment, target_padding = trelm_inputs(dictionary)
    seen, handles = capture_masks(model)
    lower = {}
    handles.append(model.encoder.sentence_encoder.layers[1].register_forward_hook(
        lambda mod, args, out: lower.__setitem__("out", out.detach().clone())))
    model(src, features_only=True, ordering_alignment=alignment, target_padding_mask=target_padding)
    for h in handles:
        h.remove()
    states = lower["out"]  # T x B x C output of the last lower layer (source + pad slot)
    positions = torch.tensor([[2, 3, 4, 5, 6, 7], [2, 3, 4, 5, 1, 1]])  # padding_idx 1 + 1, 2, ...; pads -> 1
    pos = model.encoder.sentence_encoder.embed_positions.weight[positions].transpose(0, 1)
    expected = (gather_to_target_order(states, alignment, pad_slot=5) + pos)
    expected = expected * (~target_padding).t().unsqueeze(-1)
    assert torch.allclose(seen["trilayer"][1], expected, atol=1e-6)


def test_compat_mask_reproduces_the_official_masks():
    dictionary = make_dictionary()
    model = build(XslTrelmModel, xsl_trelm_tiny_architecture, dictionary, trelm_compat_mask=True)
    src, alignment, target_padding = trelm_inputs(dictionary)
    seen, handles = capture_masks(model)
    model(src, features_only=True, ordering_alignment=alignment, target_padding_mask=target_padding)
    for h in handles:
        h.remove()
    assert seen["trilayer"][0] is None  # official: all-ones target mask
    source_mask = src.eq(dictionary.pad())  # official: the source mask above the TRILayer
    expected = torch.cat([source_mask, torch.ones(2, 1, dtype=torch.bool)], dim=1)  # extended as padding
    for name in ["layer2", "layer3"]:
        assert torch.equal(seen[name][0], expected)


def test_english_checkpoint_loads_and_zero_language_embedding_keeps_its_output():
    dictionary = make_dictionary()
    english = build(XslRobertaModel, xsl_roberta_tiny_architecture, dictionary, seed=3)
    state = {k: v.clone() for k, v in english.state_dict().items()}
    trelm = build(XslTrelmModel, xsl_trelm_tiny_architecture, dictionary, seed=4)
    trelm.load_state_dict(state, strict=True)
    assert int(trelm.encoder.trelm_version) == 1
    for name, value in english.encoder.sentence_encoder.layers[2].state_dict().items():
        assert torch.equal(trelm.encoder.trilayer.state_dict()[name], value)
    assert torch.count_nonzero(trelm.encoder.language_embeddings.weight) == 0

    src = torch.tensor([[0, 5, 6, 7, 2], [0, 8, 9, 2, 1]])
    # reference: the English model's own modules with layer 2 applied twice (the TRILayer copy),
    # the input positions added before the copy
    encoder = english.encoder.sentence_encoder
    padding = src.eq(dictionary.pad())
    x, _ = encoder.forward_embedding(src)
    x = (x * (~padding).unsqueeze(-1)).transpose(0, 1)
    for i, layer in enumerate(encoder.layers):
        if i == 2:
            x = x + encoder.embed_positions(src).transpose(0, 1)
            x = x * (~padding).t().unsqueeze(-1)
            x = layer(x, encoder_padding_mask=padding)
        x = layer(x, encoder_padding_mask=padding)
    reference = x.transpose(0, 1)
    for lang in (0, 1):
        out, _ = trelm(src, features_only=True, lang_ids=lang)
        real = ~padding
        assert torch.allclose(out[real], reference[real], atol=1e-5)
    # the TRILayer is an extra layer: inner states = embedding + L + 1 layers
    assert len(trelm.hidden_states(src)) == 4 + 2

    # a checkpoint from a newer xsl_trelm is refused
    newer = {k: v.clone() for k, v in trelm.state_dict().items()}
    newer["encoder.trelm_version"] = torch.tensor([99])
    with pytest.raises(ValueError, match="state version 99"):
        trelm.load_state_dict(newer)


def test_odd_layer_count_and_bad_language_id_are_refused():
    dictionary = make_dictionary()
    with pytest.raises(ValueError, match="even number"):
        build(XslTrelmModel, xsl_trelm_tiny_architecture, dictionary, layers=3)
    with pytest.raises(ValueError, match="not a language id"):
        build(XslTrelmModel, xsl_trelm_tiny_architecture, dictionary, trelm_language_id=2)
