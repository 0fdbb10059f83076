"""Word tokenisation for the aligners and miners (preprocess/word_tokenize.py): offsets map
back to the raw text, attached punctuation no longer hides words, and the miners' default
output is unchanged on text without punctuation."""
import json

import numpy as np
import pytest
import regex

from conftest import head
from preprocess import InputError
from preprocess import clism_spans
from preprocess.cli import main as xsl_prep
from preprocess.mlctl_wps import mine_wps
from preprocess.word_tokenize import get_tokenizer, normalize_language, resolve, tokenizer_fallbacks
from test_mlctl_wps import char_vocabulary, read_samples, write

LINES = {
    "en": ["Dr. Smith (of the U.S.) paid $3.50 in 2020, didn't he? \"Yes,\" said O'Neil.",
           "The COVID-19 vaccine (BNT162b2) was 95% effective: see www.example.org/report."],
    "de": ["Die „Deutsche Bank“ zahlte 3,5 Mio. Euro, z. B. an Merkels Büro.",
           "Am 1. Januar 2021 (Freitag) sagte Müller-Lüdenscheidt: „Nein!“"],
    "zh": ["北京大学的学生在2020年用iPhone 12说：“你好！”", "世界卫生组织（WHO）宣布，COVID-19疫情已蔓延至100多个国家。"],
    "ja": ["東京都に住んでいる、ABC社の2020年のデータ（速報）。", "「こんにちは！」と田中さんは言いました。COVID-19は大変です。"],
    "th": ["ฉันรักภาษาไทย 2020 ครับ! COVID-19 ระบาด", "องค์การอนามัยโลก (WHO) ประกาศว่า, โรคนี้ร้ายแรง."],
}
PUNCTUATION = regex.compile(r"[\p{P}\p{S}]")


def check_offsets(text, words):
    """Every word is the raw text at its offsets, words are in order without overlap, and
    together they cover every visible character."""
    covered = set()
    previous_end = 0
    for begin, end in words:
        assert previous_end <= begin < end <= len(text)
        assert not regex.search(r"\s", text[begin:end]), (text, text[begin:end])
        covered.update(range(begin, end))
        previous_end = end
    assert covered == {i for i, ch in enumerate(text) if not ch.isspace()}


@pytest.mark.parametrize("lang", sorted(LINES))
def test_offsets_map_back_exactly(lang):
    names = {resolve("auto", lang), "moses", "whitespace"}
    for name in names:
        tokenizer = get_tokenizer(name, lang)
        for text in LINES[lang]:
            words = tokenizer(text)
            check_offsets(text, words)
            if name != "whitespace":  # punctuation is split off: some words are punctuation alone
                assert any(PUNCTUATION.fullmatch(text[b:e]) for b, e in words), (name, text)
                assert len(words) > len(get_tokenizer("whitespace")(text))
    assert not tokenizer_fallbacks()  # no line needed the whitespace fallback


def test_language_aware_choices_and_segmenters():
    assert [resolve("auto", lang) for lang in ("de", "zho", "ja", "tha", "km")] == \
        ["moses", "jieba", "fugashi", "pythainlp", None]
    assert normalize_language("zho_simpl") == "zh" and normalize_language("zh-CN") == "zh"
    english = get_tokenizer("moses", "en")
    text = LINES["en"][0]
    tokens = [text[b:e] for b, e in english(text)]
    assert "Dr." in tokens and "U.S." in tokens and "3.50" in tokens  # non-breaking prefixes, numbers
    german = LINES["de"][0]
    assert "3,5" in [german[b:e] for b, e in get_tokenizer("moses", "de")(german)]
    chinese = LINES["zh"][0]
    assert "北京大学" in [chinese[b:e] for b, e in get_tokenizer("jieba", "zh")(chinese)]
    japanese = LINES["ja"][0]
    assert "東京" in [japanese[b:e] for b, e in get_tokenizer("fugashi", "ja")(japanese)]
    thai = LINES["th"][0]
    assert "ภาษาไทย" in [thai[b:e] for b, e in get_tokenizer("pythainlp", "th")(thai)]


# --------------------------------------------------------------------------- ML-CTL


EN = ["Berlin is near Potsdam.", "We met in Paris, then in Rome."]
DE = ["Berlin liegt bei Potsdam.", "Wir trafen uns in Paris, dann in Rom."]
DICTIONARY = ["berlin @ berlin", "potsdam @ potsdam", "paris @ paris", "rom @ rome", "uns @ us"]


def test_word_lost_to_attached_punctuation_is_found_with_sacremoses(tmp_path):
    spm_model, dict_path = char_vocabulary(tmp_path, EN + DE)
    corpus = [("de", write(tmp_path / "c.en", EN), write(tmp_path / "c.de", DE))]
    dictionary = {"de": write(tmp_path / "en-de.dict", DICTIONARY)}

    def words(tokenizer):
        report = mine_wps(corpus, dictionary, spm_model, dict_path, str(tmp_path / tokenizer),
                          word_tokenizer=tokenizer)
        return sorted(s[2] for s in read_samples(tmp_path / tokenizer)), report

    whitespace, _ = words("whitespace")
    moses, report = words("auto")
    assert whitespace == ["Berlin"]  # "Potsdam." "Paris," "Rome." carry their punctuation
    assert moses == ["Berlin", "Paris", "Potsdam", "Rome"]
    assert report["word_tokenizers"] == {"en": "moses", "de": "moses"}
    assert report["pairs_per_second"]["de"] > 0


def test_segmenter_restricts_chinese_substrings_to_word_boundaries(tmp_path):
    en = ["The weather is not good today."]
    zh = ["今天的天气不好。"]
    spm_model, dict_path = char_vocabulary(tmp_path, en + zh)
    corpus = [("zh", write(tmp_path / "c.en", en), write(tmp_path / "c.zh", zh))]
    dictionary = {"zh": write(tmp_path / "en-zh.dict", ["天气 @ weather", "好 @ good", "今天 @ today"])}
    found = {}
    for tokenizer in ("regex", "auto"):
        report = mine_wps(corpus, dictionary, spm_model, dict_path, str(tmp_path / tokenizer), word_tokenizer=tokenizer)
        found[tokenizer] = {s[3] for s in read_samples(tmp_path / tokenizer)}
    assert found["regex"] == {"今天", "天气", "好"}  # 好 inside 不好
    assert found["auto"] == {"今天", "天气"}  # jieba: 不好 is one word
    assert report["word_tokenizers"]["zh"] == "jieba (substrings on its word boundaries)"


def test_bad_word_tokenizer_option_is_a_parse_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        xsl_prep(["mlctl-wps", "--corpus", "de", "a.en", "a.de", "--dictionary", "de", "d", "--spm", "s",
                  "--dict", "d", "--destdir", str(tmp_path), "--word-tokenizer", "auto,zh=mecab"])
    assert exit_info.value.code == 2 and "unknown tokenizer 'mecab'" in capsys.readouterr().err


def _without_punctuation(path, out, lines):
    texts = head(path, lines, out).read_text(encoding="utf-8").splitlines()
    out.write_text("".join(" ".join(PUNCTUATION.sub(" ", t).split()) + "\n" for t in texts), encoding="utf-8")
    return str(out)


def _files(directory):
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.name != "mining.json"}


def test_mlctl_default_output_unchanged_without_punctuation(shared_data, tiny_data_bin, tmp_path):
    en = _without_punctuation(shared_data / "ntrex" / "newstest2019-src.eng.txt", tmp_path / "c.en", 300)
    corpus = [(lang, en, _without_punctuation(shared_data / "ntrex" / f"newstest2019-ref.{code}.txt",
                                              tmp_path / f"c.{lang}", 300))
              for lang, code in (("de", "deu"), ("ru", "rus"))]
    # entries with punctuation differ by design: the regex rule read "c#" as "c", sacremoses keeps "c#"
    dictionaries = {}
    for lang in ("de", "ru"):
        entries = (shared_data / "muse_dicts" / f"en-{lang}.dict").read_text(encoding="utf-8").splitlines()
        dictionaries[lang] = write(tmp_path / f"en-{lang}.dict",
                                   [e for e in entries if not PUNCTUATION.search(e.replace(" @ ", " "))])
    outputs = {}
    for tokenizer in ("regex", "auto"):
        destdir = tmp_path / tokenizer
        report = mine_wps(corpus, dictionaries, str(tiny_data_bin / "spm.model"), str(tiny_data_bin / "dict.txt"),
                          str(destdir), valid_pairs=20, word_tokenizer=tokenizer)
        outputs[tokenizer] = (_files(destdir), report["counts"])
    assert outputs["auto"][1]["samples"] > 100
    assert outputs["auto"] == outputs["regex"]
    assert len(np.load(tmp_path / "auto" / "train.wps.npy")) + \
        len(np.load(tmp_path / "auto" / "valid.wps.npy")) == outputs["auto"][1]["samples"]


# --------------------------------------------------------------------------- CLISM


def identity_aligner(src_tokens, tgt_tokens, method):
    """A deterministic stand-in for eflomal: links words that are equal (case-insensitive)."""
    return [{(i, j) for i, s in enumerate(src) for j, t in enumerate(tgt) if s.lower() == t.lower()}
            for src, tgt in zip(src_tokens, tgt_tokens)]


def test_clism_span_lost_to_attached_punctuation_is_found(tmp_path, monkeypatch):
    monkeypatch.setattr(clism_spans, "eflomal_align", identity_aligner)
    src = write(tmp_path / "c.en", ["Angela Merkel met Emmanuel Macron in Paris."])
    tgt = write(tmp_path / "c.de", ["Angela Merkel traf Emmanuel Macron in Paris."])
    kept = {}
    for tokenizer in ("whitespace", "auto"):
        out = tmp_path / f"{tokenizer}.jsonl"
        stats = clism_spans.mine_spans(src, tgt, str(out), tgt_tokenizer=tokenizer)
        records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
        kept[tokenizer] = [s["tgt_text"] for r in records for s in r["spans"]]
        assert json.loads((tmp_path / f"{tokenizer}.jsonl.stats.json").read_text())["inputs"]["tgt_lang"] == "de"
    assert "Paris" not in kept["whitespace"] and "Paris" in kept["auto"]
    assert stats.spans_kept == len(kept["auto"])


def test_clism_default_output_unchanged_without_punctuation(shared_data, tmp_path, monkeypatch):
    monkeypatch.setattr(clism_spans, "eflomal_align", identity_aligner)
    src = _without_punctuation(shared_data / "ntrex" / "newstest2019-src.eng.txt", tmp_path / "c.en", 120)
    tgt = _without_punctuation(shared_data / "ntrex" / "newstest2019-ref.deu.txt", tmp_path / "c.de", 120)
    outputs = {}
    for tokenizer in ("regex", None):  # the rule of earlier versions, the default
        out = tmp_path / f"{tokenizer}.jsonl"
        stats = clism_spans.mine_spans(src, tgt, str(out), tgt_tokenizer=tokenizer)
        outputs[tokenizer] = out.read_bytes()
    assert stats.spans_kept > 20
    assert outputs[None] == outputs["regex"]


def test_clism_needs_a_target_language_for_auto(tmp_path):
    src = write(tmp_path / "c.en", ["Angela Merkel met Macron."])
    tgt = write(tmp_path / "c.tgt", ["Angela Merkel traf Macron."])
    with pytest.raises(InputError, match="--tgt-lang"):
        clism_spans.mine_spans(src, tgt, str(tmp_path / "out.jsonl"))
    with pytest.raises(InputError, match="unknown target tokenizer"):
        clism_spans.mine_spans(src, tgt, str(tmp_path / "out.jsonl"), tgt_tokenizer="mecab", tgt_lang="de")


def test_segmenters_are_imported_only_for_their_language():
    import subprocess
    import sys

    from conftest import REPO_ROOT

    code = ("import sys; from preprocess import clism_spans, mlctl_wps, word_tokenize as w; "
            "w.get_tokenizer(w.resolve('auto', 'de'), 'de')('Hallo, Welt.'); "
            "print(sorted({'jieba', 'fugashi', 'pythainlp', 'sacremoses'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['sacremoses']"
