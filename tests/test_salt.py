"""SALT (xsl_salt, xsl_salt_token_labeling): substitutes, code-switching, mixup, consistency KL,
real fairseq-train runs, offline copies and the xsl-eval switches. The head warm-up (--trainable-parameters) is
tested in test_meta_pretraining.py::test_trainable_parameters_freezes_all_but_the_lm_head."""
import argparse
import json
import re
from types import SimpleNamespace

import pytest
import torch

import xsl_fairseq  # noqa: F401
from conftest import run_tool, write_toy_sentence_pairs
from fairseq.data import Dictionary
from preprocess import InputError
from xsl_fairseq.criterions.xsl_salt import (XslSaltConfig, XslSaltCriterion, XslSaltTokenLabelingConfig,
                                             XslSaltTokenLabelingCriterion, validate_salt_config)
from xsl_fairseq.criterions.xsl_token_labeling import XslTokenLabelingCriterion, XslTokenLabelingCriterionConfig
from xsl_fairseq.data.features import IGNORE_LABEL
from xsl_fairseq.modules.heads import TokenClassificationHead
from xsl_fairseq.models.xsl_roberta import XslRobertaModel, xsl_roberta_tiny_architecture
from xsl_fairseq.modules import salt
from xsl_fairseq.modules.salt import build_augmented_input, predict_substitutes

HEAD = "sentence_classification_head"


def toy_dictionary(words=60, extra=("[QUE]",)):
    dictionary = Dictionary()
    for i in range(words):
        dictionary.add_symbol(f"w{i}")
    dictionary.add_symbol("<mask>")
    for symbol in extra:
        dictionary.add_symbol(symbol)
    return dictionary


@pytest.fixture(scope="module")
def toy_model():
    torch.manual_seed(0)
    dictionary = toy_dictionary()
    args = argparse.Namespace(arch="xsl_roberta_tiny", max_positions=32)
    xsl_roberta_tiny_architecture(args)
    model = XslRobertaModel.build_model(args, SimpleNamespace(source_dictionary=dictionary,
                                                              target_dictionary=dictionary))
    model.register_classification_head(HEAD, num_classes=3)
    return model.eval(), dictionary


def toy_batch(dictionary, rows=6, length=14, seed=0):
    """<s> words </s> </s> words </s> with right padding of varying length."""
    generator = torch.Generator().manual_seed(seed)
    tokens = torch.full((rows, length), dictionary.pad())
    for row in range(rows):
        n = length - row  # row r has r pads
        body = torch.randint(dictionary.nspecial, dictionary.nspecial + 60, (n,), generator=generator)
        body[0], body[n // 2], body[n // 2 + 1], body[n - 1] = dictionary.bos(), dictionary.eos(), \
            dictionary.eos(), dictionary.eos()
        tokens[row, :n] = body
    return tokens


def test_special_ids_cover_fairseq_specials_mask_and_appended_symbols():
    dictionary = toy_dictionary()
    ids = set(salt.special_token_ids(dictionary).tolist())
    assert {dictionary.bos(), dictionary.pad(), dictionary.eos(), dictionary.unk(),
            dictionary.index("<mask>"), dictionary.index("[QUE]")} == ids


def test_code_switching_never_touches_specials_or_padding_and_never_keeps_the_original(toy_model):
    model, dictionary = toy_model
    special = salt.special_token_ids(dictionary)
    excluded = salt.vocabulary_exclusion(len(dictionary), special)
    for random_substitutes in (False, True):
        for seed in range(3):
            torch.manual_seed(seed)
            tokens = toy_batch(dictionary, seed=seed)
            candidates = salt.augmentable_positions(tokens, special)
            chosen = salt.choose_positions(candidates, cs_prob=1.0, mix_prob=0.0)
            assert torch.equal(chosen.code_switch, candidates) and not chosen.mixup.any()
            substitutes = predict_substitutes(model, tokens, chosen.any, 5, excluded, dictionary.index("<mask>"),
                                              random=random_substitutes)
            augmented, embeddings = build_augmented_input(model, tokens, chosen, substitutes)
            assert embeddings is None
            assert torch.equal(augmented[~candidates], tokens[~candidates])  # specials and pads untouched
            assert (augmented[candidates] != tokens[candidates]).all()  # every switch changes the token
            assert not torch.isin(augmented[candidates], special).any()  # never a special substitute


def test_positions_are_disjoint_and_follow_the_probabilities():
    torch.manual_seed(0)
    candidates = torch.ones(200, 100, dtype=torch.bool)
    candidates[:, :10] = False
    chosen = salt.choose_positions(candidates, cs_prob=0.2, mix_prob=0.3)
    assert not (chosen.code_switch & chosen.mixup).any() and not chosen.any[:, :10].any()
    assert abs(chosen.code_switch[:, 10:].float().mean().item() - 0.2) < 0.01
    assert abs(chosen.mixup[:, 10:].float().mean().item() - 0.3) < 0.01


def test_substitutes_are_the_heads_top_k_on_a_hand_built_head(toy_model):
    model, dictionary = toy_model
    special = salt.special_token_ids(dictionary)
    excluded = salt.vocabulary_exclusion(len(dictionary), special)
    bias = model.encoder.lm_head.bias
    saved = bias.detach().clone()
    # The bias dominates the logits: ranking = the order below (specials and every original
    # token ranked first, so they must be skipped).
    tokens = toy_batch(dictionary, rows=2)
    ranking = [dictionary.index("<mask>"), dictionary.eos(), int(tokens[0, 1]), 40, 17, 33, 9, 25, 50, 12]
    with torch.no_grad():
        bias.fill_(-1e4)
        for rank, token in enumerate(ranking):
            bias[token] = 1e4 - 100.0 * rank
    try:
        positions = torch.zeros_like(tokens, dtype=torch.bool)
        positions[0, 1] = True  # its original is ranked third
        substitutes = predict_substitutes(model, tokens, positions, 4, excluded, dictionary.index("<mask>"))
        assert substitutes.ids.tolist() == [[40, 17, 33, 9]]
        assert torch.allclose(substitutes.probs.sum(-1), torch.ones(1))
        assert (substitutes.probs[0, :-1] >= substitutes.probs[0, 1:]).all()
        assert salt.pick_substitute(substitutes, sample=False).tolist() == [40]
    finally:
        with torch.no_grad():
            bias.copy_(saved)


def test_topk_weights_are_the_renormalised_probabilities():
    logits = torch.tensor([[0.0, 3.0, 1.0, 2.0, 5.0, -1.0]])
    excluded = torch.tensor([True, False, False, False, False, False])
    substitutes = salt.topk_substitutes(logits, torch.tensor([4]), 2, excluded)
    assert substitutes.ids.tolist() == [[1, 3]]
    probs = torch.softmax(logits, -1)[0, [1, 3]]
    assert torch.allclose(substitutes.probs[0], probs / probs.sum())
    with pytest.raises(ValueError, match="top-k"):
        salt.topk_substitutes(logits, torch.tensor([4]), 5, excluded)


def test_mixup_with_lambda_one_reproduces_the_clean_forward_exactly(toy_model):
    model, dictionary = toy_model
    special = salt.special_token_ids(dictionary)
    excluded = salt.vocabulary_exclusion(len(dictionary), special)
    tokens = toy_batch(dictionary)
    candidates = salt.augmentable_positions(tokens, special)
    chosen = salt.choose_positions(candidates, cs_prob=0.0, mix_prob=1.0)
    substitutes = predict_substitutes(model, tokens, chosen.any, 5, excluded, dictionary.index("<mask>"))
    with torch.no_grad():
        clean = model(tokens, classification_head_name=HEAD)[0]
        augmented, embeddings = build_augmented_input(model, tokens, chosen, substitutes, mix_lambda=1.0)
        assert torch.equal(augmented, tokens)
        mixed_one = model(tokens, classification_head_name=HEAD, token_embeddings=embeddings)[0]
        assert torch.equal(mixed_one, clean)
        _, embeddings = build_augmented_input(model, tokens, chosen, substitutes, mix_lambda=0.5)
        mixed_half = model(tokens, classification_head_name=HEAD, token_embeddings=embeddings)[0]
        assert not torch.allclose(mixed_half, clean)
    expected = 0.5 * model.encoder.sentence_encoder.embed_tokens(tokens[0, 1]) + 0.5 * torch.einsum(
        "k,kc->c", substitutes.probs[0], model.encoder.sentence_encoder.embed_tokens(substitutes.ids[0]))
    assert torch.allclose(embeddings[0, 1], expected, atol=1e-6)


def test_beta_lambdas_lie_in_the_unit_interval_and_vary():
    torch.manual_seed(0)
    lambdas = salt.mix_lambdas(1000, 0.5, mix_alpha=0.4)
    assert ((lambdas >= 0) & (lambdas <= 1)).all() and lambdas.std() > 0.2
    assert torch.equal(salt.mix_lambdas(3, 0.7, 0.0), torch.full((3,), 0.7))


def test_consistency_kl_is_zero_for_identical_inputs_and_positive_otherwise():
    torch.manual_seed(0)
    logits = torch.randn(5, 3, requires_grad=True)
    assert salt.consistency_kl(logits, logits).item() == 0.0
    other = torch.randn(5, 3, requires_grad=True)
    kl = salt.consistency_kl(logits, other)
    assert kl.item() > 0
    kl.backward()
    assert logits.grad is None and other.grad.abs().sum() > 0  # the clean side is the detached teacher


def toy_criterion(dictionary, **options):
    cfg = XslSaltConfig(**options)
    return XslSaltCriterion(cfg, SimpleNamespace(source_dictionary=dictionary, label_dictionary=dictionary))


def test_criterion_sums_clean_augmented_and_weighted_kl(toy_model):
    model, dictionary = toy_model
    tokens = toy_batch(dictionary)
    sample = {"net_input": {"src_tokens": tokens, "src_lengths": tokens.ne(1).sum(1)},
              "target": torch.tensor([0, 1, 2, 0, 1, 2]), "ntokens": int(tokens.ne(1).sum()), "nsentences": 6}
    criterion = toy_criterion(dictionary, salt_consistency_weight=0.5)
    model.train()
    try:
        torch.manual_seed(0)
        loss, sample_size, log = criterion(model, sample)
    finally:
        model.eval()
    assert sample_size == 6
    assert torch.allclose(loss, log["clean_loss"] + log["augmented_loss"] + 0.5 * log["consistency_kl"])
    assert log["salt_code_switched"] > 0 and log["salt_mixed"] > 0
    assert log["salt_candidates"] == int(salt.augmentable_positions(tokens, criterion.special_ids).sum())
    loss.backward()
    assert model.classification_heads[HEAD].out_proj.weight.grad.abs().sum() > 0
    model.zero_grad()
    # eval mode: clean loss only, same keys (summable across ranks)
    eval_loss, _, eval_log = criterion(model, sample)
    assert set(eval_log) == set(log) and eval_log["augmented_loss"] == 0 and eval_loss == eval_log["clean_loss"]


@pytest.mark.parametrize("options, message", [
    (dict(salt_cs_prob=1.5), "salt-cs-prob"),
    (dict(salt_cs_prob=0.6, salt_mix_prob=0.6), "<= 1"),
    (dict(salt_cs_prob=0.0, salt_mix_prob=0.0), "nothing to augment"),
    (dict(salt_substitutes="offline"), "offline"),
    (dict(salt_topk=0), "salt-topk"),
    (dict(salt_mix_alpha=-1.0), "salt-mix-alpha"),
])
def test_bad_options_are_rejected_before_training(options, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        validate_salt_config(XslSaltConfig(**options))


# ------------------------------------------------------------------ token labelling (xsl_salt_token_labeling)

TOKEN_HEAD = "token_labeling"


@pytest.fixture(scope="module")
def toy_tagger():
    """A tiny encoder with a 3-label token head and no dropout anywhere, so that two forwards of
    the same input in training mode are identical."""
    torch.manual_seed(0)
    dictionary = toy_dictionary()
    args = argparse.Namespace(arch="xsl_roberta_tiny", max_positions=32, dropout=0.0, attention_dropout=0.0,
                              activation_dropout=0.0, pooler_dropout=0.0)
    xsl_roberta_tiny_architecture(args)
    model = XslRobertaModel.build_model(args, SimpleNamespace(source_dictionary=dictionary,
                                                              target_dictionary=dictionary))
    model.register_task_head(TOKEN_HEAD, TokenClassificationHead(args.encoder_embed_dim, 3, 0.0))
    return model.eval(), dictionary


def tagging_sample(dictionary):
    """Labels on every second word position; none on specials or padding."""
    tokens = toy_batch(dictionary)
    labels = torch.full_like(tokens, IGNORE_LABEL)
    word = salt.augmentable_positions(tokens, salt.special_token_ids(dictionary))
    columns = torch.arange(tokens.size(1)).expand_as(tokens)
    labels[word & columns.remainder(2).eq(1)] = (columns % 3)[word & columns.remainder(2).eq(1)]
    return {"id": torch.arange(tokens.size(0)), "net_input": {"src_tokens": tokens},
            "target": labels, "ntokens": int(tokens.ne(dictionary.pad()).sum()), "nsentences": tokens.size(0)}


def tagging_criterion(dictionary, **options):
    return XslSaltTokenLabelingCriterion(XslSaltTokenLabelingConfig(**options),
                                         SimpleNamespace(source_dictionary=dictionary))


def in_training_mode(model, function):
    model.train()
    try:
        return function()
    finally:
        model.eval()


def test_token_salt_sums_its_terms_over_labelled_positions(toy_tagger):
    model, dictionary = toy_tagger
    sample = tagging_sample(dictionary)
    criterion = tagging_criterion(dictionary, salt_cs_prob=0.3, salt_mix_prob=0.3, salt_consistency_weight=0.5,
                                  salt_topk=3)
    loss, sample_size, log = in_training_mode(model, lambda: criterion(model, sample))
    labelled = int(sample["target"].ne(IGNORE_LABEL).sum())
    assert sample_size == log["sample_size"] == labelled
    assert torch.allclose(loss, log["clean_loss"] + log["augmented_loss"] + 0.5 * log["consistency_kl"])
    assert log["salt_code_switched"] > 0 and log["salt_mixed"] > 0 and log["consistency_kl"] > 0
    loss.backward()
    assert model.task_heads[TOKEN_HEAD].proj.weight.grad.abs().sum() > 0
    model.zero_grad()
    # the clean term is xsl_token_labeling's loss of the same batch
    plain = XslTokenLabelingCriterion(XslTokenLabelingCriterionConfig(), None)
    plain_loss, plain_size, _ = in_training_mode(model, lambda: plain(model, sample))
    assert int(plain_size) == labelled and torch.allclose(log["clean_loss"], plain_loss.detach(), atol=1e-5)
    # eval mode: the clean loss only, with the same keys (summable across ranks)
    eval_loss, _, eval_log = criterion(model, sample)
    assert set(eval_log) == set(log) and eval_log["augmented_loss"] == 0
    assert torch.allclose(eval_loss, plain_loss.detach(), atol=1e-5)


def test_token_salt_with_identity_mixup_adds_a_copy_of_the_clean_loss(toy_tagger):
    """λ = 1 keeps every embedding: the augmented term equals the clean one and the KL is 0."""
    model, dictionary = toy_tagger
    criterion = tagging_criterion(dictionary, salt_cs_prob=0.0, salt_mix_prob=1.0, salt_mix_lambda=1.0)
    _, _, log = in_training_mode(model, lambda: criterion(model, tagging_sample(dictionary)))
    assert log["salt_mixed"] == log["salt_candidates"] > 0
    assert torch.allclose(log["augmented_loss"], log["clean_loss"], atol=1e-5)
    assert abs(float(log["consistency_kl"])) < 1e-5


def test_token_salt_code_switches_words_only_and_keeps_the_labels(toy_tagger, monkeypatch):
    model, dictionary = toy_tagger
    sample = tagging_sample(dictionary)
    criterion = tagging_criterion(dictionary, salt_cs_prob=1.0, salt_mix_prob=0.0, salt_topk=2)
    seen = {}
    original = criterion._augmented_model_inputs

    def spy(model_, tokens, augmented, embeddings):
        seen["tokens"], seen["augmented"] = tokens, augmented
        return original(model_, tokens, augmented, embeddings)

    monkeypatch.setattr(criterion, "_augmented_model_inputs", spy)
    in_training_mode(model, lambda: criterion(model, sample))
    tokens, augmented = seen["tokens"], seen["augmented"]
    words = salt.augmentable_positions(tokens, criterion.special_ids)
    assert torch.equal(augmented[~words], tokens[~words])  # <s>, </s> and padding untouched
    assert bool(augmented[words].ne(tokens[words]).all())  # every word switched, never to itself
    assert not bool(torch.isin(augmented[words], criterion.special_ids).any())


def test_token_salt_takes_online_substitutes_only():
    with pytest.raises(ValueError, match="sentence pairs only"):
        tagging_criterion(toy_dictionary(), salt_substitutes="offline", salt_mix_prob=0.0)


# ------------------------------------------------------------------ real fairseq-train runs

def train_salt(data, save_dir, *criterion_args, updates=30):
    proc = run_tool(
        "fairseq-train", data, "--user-dir", "xsl_fairseq", "--task", "xsl_sentence_prediction",
        "--criterion", "xsl_salt", *criterion_args, "--num-classes", 2, "--init-token", 0, "--separator-token", 2,
        "--arch", "xsl_roberta_tiny", "--max-positions", 32, "--optimizer", "adam", "--lr", "1e-3",
        "--batch-size", 16, "--max-update", updates, "--cpu", "--num-workers", 0, "--seed", 1,
        "--save-dir", save_dir, "--no-save", "--disable-validation", "--log-format", "json",
        "--log-interval", 5)
    logs = [json.loads(line[line.index("{"):]) for line in (proc.stdout + proc.stderr).splitlines()
            if '"train_inner"' not in line and '"loss"' in line and "{" in line]
    return logs, proc


def test_fairseq_train_with_xsl_salt_loss_falls(tmp_path):
    data = write_toy_sentence_pairs(tmp_path / "pairs")
    logs, _ = train_salt(data, tmp_path / "ckpt", "--salt-topk", 3)
    inner = [log for log in logs if "train_loss" not in log]
    assert len(inner) >= 4, logs
    assert float(inner[-1]["loss"]) < 0.7 * float(inner[0]["loss"])
    for key in ("clean_loss", "augmented_loss", "consistency_kl", "code_switched_pct", "mixed_pct"):
        assert key in inner[0]
    assert 5 < float(inner[0]["code_switched_pct"]) < 30


def test_fairseq_train_with_xsl_salt_token_labeling_loss_falls(tmp_path):
    from test_data_parallel import write_token_labels

    data = write_token_labels(tmp_path / "ner", sentences=64)
    proc = run_tool(
        "fairseq-train", data, "--user-dir", "xsl_fairseq", "--task", "xsl_token_labeling",
        "--criterion", "xsl_salt_token_labeling", "--salt-topk", 3, "--head-dropout", 0,
        "--arch", "xsl_roberta_tiny", "--max-positions", 32, "--optimizer", "adam", "--lr", "1e-3",
        "--batch-size", 16, "--max-update", 40, "--cpu", "--num-workers", 0, "--seed", 1,
        "--save-dir", tmp_path / "ckpt", "--no-save", "--disable-validation", "--log-format", "json",
        "--log-interval", 5)
    inner = [json.loads(line[line.index("{"):]) for line in (proc.stdout + proc.stderr).splitlines()
             if '"train_inner"' not in line and '"loss"' in line and "{" in line and "train_loss" not in line]
    assert len(inner) >= 4, proc.stderr[-2000:]
    assert float(inner[-1]["loss"]) < 0.8 * float(inner[0]["loss"])
    for key in ("clean_loss", "augmented_loss", "consistency_kl", "label_acc_augmented", "code_switched_pct"):
        assert key in inner[0]


# ------------------------------------------------------------------ xsl-eval --salt, offline copies

from test_eval_cli import read_results, tiny_finetuning, tiny_pretrained  # noqa: E402,F401  (shared fixture)
from xsl_fairseq.evaluation.cli import main as xsl_eval  # noqa: E402


@pytest.mark.parametrize("mode", ["online", "offline"])
def test_xsl_eval_sentence_pair_salt(tiny_pretrained, shared_data, tmp_path, mode):  # noqa: F811
    assert xsl_eval(["sentence-pair", "--checkpoint", str(tiny_pretrained), "--eval-dir", str(shared_data / "xnli"),
                     "--languages", "en,de", "--salt", mode,
                     *map(str, tiny_finetuning(tmp_path, shared_data / "xnli" / "dev-en.tsv",
                                               "--fairseq-args=--salt-topk 3 --salt-cs-prob 0.3"))]) == 0
    results, _ = read_results(tmp_path)
    assert results["config"]["arguments"]["salt"] == mode
    assert set(results["languages"]) == {"de", "en"} and results["languages"]["de"]["examples"] == 24
    if mode == "offline":
        copy = results["config"]["salt_offline_copy"]
        assert copy["examples"] == 48 and copy["cs_prob"] == 0.3 and copy["topk"] == 3
        assert 0.15 < copy["code_switched_tokens"] / copy["augmentable_tokens"] < 0.45
        # the copy keeps every special token and length, and changes the switched tokens
        from xsl_fairseq.data.features import load_sequences
        clean = load_sequences(str(tmp_path / "out" / "work" / "data" / "input0" / "train"))
        augmented = load_sequences(str(tmp_path / "out" / "work" / "data_salt" / "input0" / "train"))
        changed = 0
        for i in range(len(clean)):
            assert len(clean[i]) == len(augmented[i]) and clean[i][-1] == augmented[i][-1] == 2
            changed += int((clean[i] != augmented[i]).sum())
        assert changed > 0


def test_salt_augment_cli_errors(tiny_pretrained, tmp_path, capsys):  # noqa: F811
    from preprocess.cli import main as xsl_prep

    def fails(data, checkpoint, message):
        assert xsl_prep(["salt-augment", "--checkpoint", str(checkpoint), "--data", str(data),
                         "--destdir", str(tmp_path / "out")]) == 2
        assert message in capsys.readouterr().err

    (tmp_path / "empty").mkdir()
    fails(tmp_path / "empty", tiny_pretrained, "input0/train.idx: not found")
    data = write_toy_sentence_pairs(tmp_path / "pairs")
    fails(data, tmp_path / "missing.pt", "checkpoint not found")
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(tiny_pretrained.read_bytes()[:1000])
    fails(data, truncated, "truncated.pt: cannot read the checkpoint")


def test_augmented_copy_must_match_the_clean_data(tmp_path):
    from fairseq import options, tasks
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf

    clean = write_toy_sentence_pairs(tmp_path / "clean", examples=40, seed=0)

    def load(copy):
        flags = [str(clean), "--user-dir", "xsl_fairseq", "--task", "xsl_sentence_prediction", "--num-classes", "2",
                 "--init-token", "0", "--separator-token", "2", "--arch", "xsl_roberta_tiny", "--cpu",
                 "--criterion", "sentence_prediction", "--salt-augmented-data", str(copy)]
        cfg = convert_namespace_to_omegaconf(options.parse_args_and_arch(options.get_training_parser(), flags))
        task = tasks.setup_task(cfg.task)
        return task, task.load_dataset("train")

    task, dataset = load(clean)  # a "copy" identical to the data: every example pairs with itself
    sample = dataset.collater([dataset[i] for i in range(4)])
    assert torch.equal(sample["salt_net_input"]["src_tokens"], sample["net_input"]["src_tokens"])
    with pytest.raises(ValueError, match="example lengths differ"):
        load(write_toy_sentence_pairs(tmp_path / "other", examples=40, seed=1))
    with pytest.raises(ValueError, match="40"):
        load(write_toy_sentence_pairs(tmp_path / "fewer", examples=30, seed=0))
    with pytest.raises(InputError, match="no input0"):  # one line under fairseq-train
        load(tmp_path / "missing")


def test_xsl_eval_pos_salt_online(tiny_pretrained, shared_data, tmp_path, caplog):  # noqa: F811
    caplog.set_level("INFO", logger="xsl_fairseq.evaluation.finetune")
    ud = shared_data / "ud"
    train = next(ud.rglob("en_ewt-ud-train.conllu"))
    assert xsl_eval(["pos", "--checkpoint", str(tiny_pretrained), "--eval-dir", str(ud), "--languages", "de",
                     "--salt", "online",
                     *map(str, tiny_finetuning(tmp_path, train, "--fairseq-args=--salt-topk 3"))]) == 0
    results, _ = read_results(tmp_path)
    assert results["config"]["arguments"]["salt"] == "online"
    assert results["languages"]["de"]["examples"] == 24
    assert "--criterion xsl_salt_token_labeling" in caplog.text


def test_salt_summary_flags_a_classifier_that_predicts_one_label(tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("salt_summarize", "examples/salt/summarize.py")
    summarize = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(summarize)
    run = tmp_path / "pawsx" / "plain"
    for seed, labels in ((1, "0\n0\n0\n"), (2, "0\n1\n0\n")):
        (run / "predictions" / f"seed{seed}").mkdir(parents=True)
        (run / "predictions" / f"seed{seed}" / "de.tsv").write_text(labels, encoding="utf-8")
    assert summarize.single_label_files(run) == [("1", "de", "0")]
