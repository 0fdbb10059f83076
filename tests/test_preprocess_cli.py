"""xsl-prep on real data slices: sentencepiece, binarisation, and its input errors."""
import sentencepiece as spm
from fairseq.data import Dictionary, data_utils

from conftest import run_tool


def test_spm_train_writes_model_and_xlmr_style_dict(tiny_corpus, tmp_path):
    run_tool("xsl-prep", "spm-train", "--input", *tiny_corpus.values(),
             "--model-prefix", tmp_path / "spm", "--vocab-size", 600)
    processor = spm.SentencePieceProcessor(model_file=str(tmp_path / "spm.model"))
    dictionary = Dictionary.load(str(tmp_path / "dict.txt"))
    assert processor.get_piece_size() == 600
    # <s> <pad> </s> <unk> + every piece but spm's own three specials
    assert len(dictionary) == 4 + 600 - 3
    piece = processor.id_to_piece(100)
    assert dictionary.index(piece) == 100 + 1  # fairseq id = sentencepiece id + 1, as in XLM-R
    counts = dict(line.split() for line in open(tmp_path / "dict.txt", encoding="utf-8"))
    assert sum(int(c) for c in counts.values()) > 10000  # real piece frequencies


def test_spm_encode_keeps_lines_aligned(tiny_data_bin, tmp_path):
    raw = tmp_path / "raw.txt"
    raw.write_text("Hello world.\n\nGuten Tag.\n", encoding="utf-8")
    run_tool("xsl-prep", "spm-encode", "--model", tiny_data_bin / "spm.model",
             "--input", raw, "--output", tmp_path / "enc.txt")
    encoded = (tmp_path / "enc.txt").read_text(encoding="utf-8").split("\n")
    assert len(encoded) == 4 and encoded[1] == "" and encoded[3] == ""
    assert encoded[0].startswith("▁")


def test_binarize_mono_and_para_layout(tiny_corpus, tiny_data_bin, tmp_path):
    dict_path = tiny_data_bin / "dict.txt"
    run_tool("xsl-prep", "binarize-mono", "--input", tiny_corpus["en"], tiny_corpus["de"],
             "--spm", tiny_data_bin / "spm.model", "--dict", dict_path,
             "--destdir", tmp_path / "mono", "--valid-lines", 50)
    dictionary = Dictionary.load(str(tmp_path / "mono" / "dict.txt"))
    train = data_utils.load_indexed_dataset(str(tmp_path / "mono" / "train"), dictionary)
    valid = data_utils.load_indexed_dataset(str(tmp_path / "mono" / "valid"), dictionary)
    assert len(train) + len(valid) == 600 and len(valid) == 50
    assert train[0][-1].item() == dictionary.eos()

    run_tool("xsl-prep", "binarize-para", "--src", "en", "--tgt", "de",
             "--train", tiny_corpus["en"], tiny_corpus["de"], "--spm", tiny_data_bin / "spm.model",
             "--dict", dict_path, "--destdir", tmp_path / "para", "--valid-lines", 20,
             "--max-tokens-per-side", 40)
    para = tmp_path / "para"
    for name in ["dict.en.txt", "dict.de.txt", "train.en-de.en.bin", "train.en-de.de.idx",
                 "valid.en-de.en.bin", "valid.en-de.de.idx"]:
        assert (para / name).is_file(), name
    src = data_utils.load_indexed_dataset(str(para / "train.en-de.en"), dictionary)
    tgt = data_utils.load_indexed_dataset(str(para / "train.en-de.de"), dictionary)
    assert len(src) == len(tgt) < 280  # some over-long pairs were dropped
    assert max(src.sizes) <= 41 and max(tgt.sizes) <= 41  # 40 pieces + </s>


def test_parallel_line_count_mismatch_names_both_files(tiny_corpus, tiny_data_bin, tmp_path):
    short = tmp_path / "short.de"
    short.write_text("".join(open(tiny_corpus["de"], encoding="utf-8").readlines()[:250]), encoding="utf-8")
    proc = run_tool("xsl-prep", "binarize-para", "--src", "en", "--tgt", "de",
                    "--train", tiny_corpus["en"], short, "--dict", tiny_data_bin / "dict.txt",
                    "--destdir", tmp_path / "out", check=False)
    assert proc.returncode == 2
    assert str(tiny_corpus["en"]) in proc.stderr and "300 lines" in proc.stderr
    assert str(short) in proc.stderr and "250" in proc.stderr


def test_invalid_utf8_names_file_and_line(tiny_data_bin, tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"fine\nalso fine\nbroken \xff\xfe here\n")
    proc = run_tool("xsl-prep", "binarize-mono", "--input", bad, "--dict", tiny_data_bin / "dict.txt",
                    "--destdir", tmp_path / "out", check=False)
    assert proc.returncode == 2
    assert f"{bad}:3: not valid UTF-8" in proc.stderr


def test_missing_dictionary_is_a_clear_error(tiny_corpus, tmp_path):
    proc = run_tool("xsl-prep", "binarize-mono", "--input", tiny_corpus["en"],
                    "--dict", tmp_path / "nope.txt", "--destdir", tmp_path / "out", check=False)
    assert proc.returncode == 2 and "nope.txt: dictionary not found" in proc.stderr
