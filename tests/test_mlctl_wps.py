"""xsl-prep mlctl-wps: word-positioned samples on a hand-made corpus and on real slices."""
import json
from pathlib import Path

import numpy as np
import pytest
import sentencepiece as spm

from preprocess import InputError
from preprocess.cli import main as xsl_prep
from preprocess.mlctl_wps import mine_wps, read_bilingual_dictionary
from preprocess.spm import write_fairseq_dict
from xsl_fairseq.data.features import load_sequences

EN = [
    "The house is red and the house is big.",  # house twice: no sample; red, big: one each
    "My dog sleeps.",
    "A well-known dog-friendly house.",  # dog only inside a compound; house once
    "Red wine, red roses.",  # red twice: no sample
    "The cat and the dog.",  # Hund twice on the German side: ambiguous
    "",
    "The dog barks at the cat near the red house in the big garden today.",  # over --max-tokens-per-side
]
DE = [
    "Das Haus ist rot und das Haus ist groß.",
    "Mein Hund schläft.",
    "Ein bekanntes hundefreundliches Haus.",
    "Rotwein, rote Rosen.",
    "Die Katze und der Hund und der Hund.",
    "",
    "Der Hund bellt die Katze nahe dem roten Haus im großen Garten heute an.",
]
HUNALIGN = ["haus @ house", "rot @ red", "rote @ red", "groß @ big", "hund @ dog", "katze @ cat",
            "die @ the", "der @ the", "das @ the", "und @ and", "ist @ is"]


def char_vocabulary(tmp_path: Path, lines) -> tuple:
    """A character-level sentencepiece model (every character a piece) and its dict.txt."""
    text = tmp_path / "spm_text.txt"
    text.write_text("\n".join(line for line in lines if line) + "\n", encoding="utf-8")
    prefix = str(tmp_path / "spm")
    spm.SentencePieceTrainer.train(input=str(text), model_prefix=prefix, model_type="char", vocab_size=60,
                                   character_coverage=1.0, unk_id=0, bos_id=1, eos_id=2, pad_id=-1,
                                   hard_vocab_limit=False, minloglevel=2)
    processor = spm.SentencePieceProcessor(model_file=prefix + ".model")
    write_fairseq_dict(processor, {}, str(tmp_path / "dict.txt"))
    return prefix + ".model", str(tmp_path / "dict.txt")


def write(path: Path, lines) -> str:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def read_samples(destdir: Path, split: str = "train"):
    lines = (destdir / f"{split}.wps.tsv").read_text(encoding="utf-8").splitlines()[1:]
    return [line.split("\t") for line in lines]


def decoded_span(destdir: Path, split: str, side: str, pair: int, start: int, end: int, spm_model: str) -> str:
    """The text of token positions [start, end] of one stored sentence (<s> at 0)."""
    from fairseq.data import Dictionary

    dictionary = Dictionary.load(str(destdir / "dict.txt"))
    ids = load_sequences(str(destdir / f"{split}.{side}.tokens"))[pair].tolist()
    assert ids[0] == dictionary.bos() and ids[-1] == dictionary.eos()
    pieces = [dictionary[i] for i in ids[start:end + 1]]
    return spm.SentencePieceProcessor(model_file=spm_model).decode_pieces(pieces).strip()


def test_hand_made_corpus_samples_spans_and_counts(tmp_path):
    spm_model, dict_path = char_vocabulary(tmp_path, EN + DE)
    destdir = tmp_path / "wps"
    report = mine_wps([("de", write(tmp_path / "c.en", EN), write(tmp_path / "c.de", DE))],
                      {"de": write(tmp_path / "en-de.dict", HUNALIGN)}, spm_model, dict_path, str(destdir),
                      max_tokens_per_side=60)
    words = sorted((s[2], s[3]) for s in read_samples(destdir))
    assert words == [("big", "groß"), ("cat", "Katze"), ("dog", "Hund"), ("house", "Haus"), ("red", "rot")]
    counts = report["counts"]
    assert counts == {
        "pairs_seen": 7, "pairs_with_empty_side": 1, "pairs_over_max_length": 1, "pairs_without_match": 1,
        "pairs_with_samples": 4, "samples": 5,
        # line 3: nothing for "dog" inside dog-friendly (one word), "Haus" matched; line 5: Hund twice
        "candidates_without_translation": 0, "candidates_ambiguous": 1, "candidates_not_piece_aligned": 0,
        "candidates_position_taken": 0,
    }
    assert counts["pairs_seen"] == sum(counts[k] for k in ("pairs_with_empty_side", "pairs_over_max_length",
                                                           "pairs_without_match", "pairs_with_samples"))
    table = np.load(destdir / "train.wps.npy")
    assert table.shape == (5, 6) and set(table[:, 5]) == {0}
    for (pair, xs, xe, ys, ye, _), (_, _, en_word, de_word, *_) in zip(table, read_samples(destdir)):
        assert decoded_span(destdir, "train", "x", pair, xs, xe, spm_model) == en_word
        assert decoded_span(destdir, "train", "y", pair, ys, ye, spm_model) == de_word
    assert (destdir / "dict.txt").is_file() and (destdir / "spm.model").is_file()
    assert json.loads((destdir / "mining.json").read_text())["counts"] == counts


def test_unspaced_language_matches_substrings_and_nested_words_once(tmp_path):
    en = ["The weather is good today.", "Today the weather is not good, it is cold."]
    zh = ["今天天气很好。", "今天天气不好，天很冷，很冷。"]
    spm_model, dict_path = char_vocabulary(tmp_path, en + zh)
    dictionary = write(tmp_path / "en-zh.dict", ["天气 @ weather", "气 @ weather", "今天 @ today", "好 @ good",
                                                  "冷 @ cold"])
    corpus = [("zh", write(tmp_path / "c.en", en), write(tmp_path / "c.zh", zh))]
    destdir = tmp_path / "wps"
    # the rule of earlier versions (regex); the jieba default is in tests/test_word_tokenize.py
    report = mine_wps(corpus, {"zh": dictionary}, spm_model, dict_path, str(destdir), word_tokenizer="regex")
    samples = {(int(s[1].rsplit(":", 1)[1]), s[2], s[3]) for s in read_samples(destdir)}
    # 气 nested inside 天气 is not a second position; 好 inside 不好 counts (no boundaries without
    # spaces or a segmenter); 冷 occurs twice: ambiguous
    assert samples == {(1, "weather", "天气"), (1, "today", "今天"), (1, "good", "好"),
                       (2, "Today", "今天"), (2, "weather", "天气"), (2, "good", "好")}
    assert report["counts"]["candidates_ambiguous"] == 1
    # read as a spaced language, a Chinese sentence is one word: word boundaries let nothing match
    with pytest.raises(InputError, match="no word-positioned sample"):
        mine_wps(corpus, {"zh": dictionary}, spm_model, dict_path, str(tmp_path / "spaced"), unspaced_languages=(),
                 word_tokenizer="regex")


def test_dictionary_formats_agree_and_bad_lines_name_file_and_line(tmp_path, capsys):
    hunalign = read_bilingual_dictionary(write(tmp_path / "h.dict", HUNALIGN))
    tsv = read_bilingual_dictionary(write(tmp_path / "d.tsv", [f"{e}\t{x}" for x, _, e in
                                                                (l.partition(" @ ") for l in HUNALIGN)]))
    muse = read_bilingual_dictionary(write(tmp_path / "d.txt", [f"{x} {e}" for x, _, e in
                                                                (l.partition(" @ ") for l in HUNALIGN)]),
                                     columns="xx-en")
    assert hunalign.translations == tsv.translations == muse.translations
    assert hunalign.translations["red"] == {"rot", "rote"}
    assert "the" not in hunalign.translations  # English stop word
    assert all("die" not in t for t in hunalign.translations.values())  # translation of a stop word

    bad = write(tmp_path / "bad.dict", ["haus @ house", "hund dog", "rot @ red"])
    with pytest.raises(InputError, match=r"bad\.dict:2: expected 'xx @ en'"):
        read_bilingual_dictionary(bad)
    bad_tsv = write(tmp_path / "bad.tsv", ["house\thaus", "dog\thund\textra"])
    with pytest.raises(InputError, match=r"bad\.tsv:2: expected two tab-separated columns"):
        read_bilingual_dictionary(bad_tsv)

    spm_model, dict_path = char_vocabulary(tmp_path, EN + DE)
    common = ["--spm", spm_model, "--dict", dict_path, "--destdir", str(tmp_path / "out")]
    assert xsl_prep(["mlctl-wps", "--corpus", "de", write(tmp_path / "c.en", EN), write(tmp_path / "c.de", DE),
                     "--dictionary", "de", bad, *common]) == 2
    assert "bad.dict:2" in capsys.readouterr().err
    assert xsl_prep(["mlctl-wps", "--corpus", "de", str(tmp_path / "c.en"), write(tmp_path / "short.de", DE[:3]),
                     "--dictionary", "de", str(tmp_path / "h.dict"), *common]) == 2
    assert "differ in line count" in capsys.readouterr().err


def test_real_slices_with_muse_dictionaries(shared_data, tiny_data_bin, tiny_corpus, tmp_path, capsys):
    destdir = tmp_path / "wps"
    assert xsl_prep(list(map(str, [
        "mlctl-wps", "--corpus", "de", tiny_corpus["en"], tiny_corpus["de"],
        "--corpus", "ru", tiny_corpus["en"], tiny_corpus["ru"],
        "--dictionary", "de", shared_data / "muse_dicts" / "en-de.dict",
        "--dictionary", "ru", shared_data / "muse_dicts" / "en-ru.dict",
        "--spm", tiny_data_bin / "spm.model", "--dict", tiny_data_bin / "dict.txt",
        "--destdir", destdir, "--valid-pairs", 20, "--max-tokens-per-side", 64]))) == 0
    assert "samples from" in capsys.readouterr().out
    report = json.loads((destdir / "mining.json").read_text())
    for lang in ("de", "ru"):
        counts = report["counts_per_language"][lang]
        assert counts["pairs_seen"] == 300
        assert counts["pairs_seen"] == (counts["pairs_with_empty_side"] + counts["pairs_over_max_length"]
                                        + counts["pairs_without_match"] + counts["pairs_with_samples"])
        assert counts["pairs_over_max_length"] > 0
        assert counts["samples"] >= counts["pairs_with_samples"] > 100  # several words per pair
    assert report["split_pairs"]["valid"] == 20
    assert sum(report["split_samples"].values()) == report["counts"]["samples"]
    table = np.load(destdir / "train.wps.npy")
    assert set(table[:, 5]) == {0, 1} and table[:, 0].max() + 1 == report["split_pairs"]["train"]
    spm_model = str(tiny_data_bin / "spm.model")
    rows = read_samples(destdir)
    for row, (pair, xs, xe, ys, ye, _) in list(zip(rows, table))[::25]:  # spans decode to the words
        assert decoded_span(destdir, "train", "x", pair, xs, xe, spm_model).lower() == row[2].lower()
        assert decoded_span(destdir, "train", "y", pair, ys, ye, spm_model).lower() == row[3].lower()
