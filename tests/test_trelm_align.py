"""xsl-prep trelm-align: word links -> per-piece source indices; drops and errors."""
import json

import pytest

from preprocess import InputError
from preprocess.trelm_align import UNALIGNED, align_corpus, piece_alignment, piece_words
from xsl_fairseq.data.features import load_sequences

from preprocess.cli import main as cli_main


def test_piece_words_follow_whitespace_words():
    text = "Hello world."
    # pieces: "▁Hel" "lo" "▁" "world" "."   (the bare "▁" belongs to the next word)
    spans = [(0, 3), (3, 5), (5, 6), (6, 11), (11, 12)]
    assert piece_words(text, spans) == ([0, 0, 1, 1, 1], 2)


def test_piece_alignment_many_to_one_one_to_many_and_unaligned_by_hand():
    # source words: 0 = pieces 0,1 ; 1 = piece 2 ; 2 = pieces 3,4,5
    src_owner = [0, 0, 1, 2, 2, 2]
    # target words: 0 = pieces 0,1,2 ; 1 = piece 3 ; 2 = piece 4 ; 3 = piece 5 ; 4 = piece 6
    tgt_owner = [0, 0, 0, 1, 2, 3, 4]
    links = {(0, 0),          # word 0 -> word 0: pieces 0,1,2 read source pieces 0,1,1 (min(k, n-1))
             (1, 1), (1, 2),  # many-to-one: target words 1 and 2 both read source word 1
             (0, 3), (2, 3)}  # one-to-many: target word 3 has two links, the last (source word 2) wins
    # target word 4 has no link
    assert piece_alignment(links, src_owner, tgt_owner) == [0, 1, 1, 2, 2, 3, UNALIGNED]


def write(path, lines):
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return str(path)


def test_align_with_pharaoh_file_counts_drops(tiny_data_bin, tmp_path):
    spm, dictionary = str(tiny_data_bin / "spm.model"), str(tiny_data_bin / "dict.txt")
    src = write(tmp_path / "s.en", ["the house is red", "", "a b c d e f g h i j k l m n o p", "no links here"])
    tgt = write(tmp_path / "s.de", ["das Haus ist rot", "leer", "x", "keine"])
    links = write(tmp_path / "links", ["0-0 1-1 2-2 3-3", "", "0-0", ""])
    report = align_corpus(src, tgt, "en", "de", spm, dictionary, str(tmp_path / "out"), alignments_path=links,
                          max_tokens_per_side=12)
    assert report["drops"] == {"empty_side": 1, "too_long": 1, "no_link": 1}
    assert report["splits"]["train"]["pairs"] == 1
    meta = json.loads((tmp_path / "out" / "trelm.json").read_text())
    assert meta["src_lang"] == "en" and meta["tgt_lang"] == "de"
    src_ids, tgt_ids = load_sequences(str(tmp_path / "out" / "train.src"))[0], load_sequences(
        str(tmp_path / "out" / "train.tgt"))[0]
    align = load_sequences(str(tmp_path / "out" / "train.align"))[0].tolist()
    align_rev = load_sequences(str(tmp_path / "out" / "train.align_rev"))[0].tolist()
    assert len(align) == len(tgt_ids) and len(align_rev) == len(src_ids)
    assert all(0 <= a < len(src_ids) for a in align)  # a monotone 1-1 word alignment links every piece
    assert align == sorted(align) and align_rev == sorted(align_rev)


def test_bad_inputs_name_file_and_line(tiny_data_bin, tmp_path, capsys):
    spm, dictionary = str(tiny_data_bin / "spm.model"), str(tiny_data_bin / "dict.txt")
    src = write(tmp_path / "s.en", ["the house", "is red"])
    tgt = write(tmp_path / "s.de", ["das Haus", "ist rot"])
    links = write(tmp_path / "links", ["0-0 1-1", "0-0 1-5"])
    with pytest.raises(InputError, match=r"links:2: link 1-5 points past the end of the target"):
        align_corpus(src, tgt, "en", "de", spm, dictionary, str(tmp_path / "o1"), alignments_path=links)
    short = write(tmp_path / "short.de", ["das Haus"])
    with pytest.raises(InputError, match="differ in line count"):
        align_corpus(src, short, "en", "de", spm, dictionary, str(tmp_path / "o2"))
    empty = write(tmp_path / "empty.en", [])
    empty_de = write(tmp_path / "empty.de", [])
    with pytest.raises(InputError, match="empty file"):
        align_corpus(empty, empty_de, "en", "de", spm, dictionary, str(tmp_path / "o3"))
    with pytest.raises(SystemExit) as exit_info:  # checked at parse time
        cli_main(["trelm-align", "--src", src, "--tgt", tgt, "--tgt-lang", "de", "--spm", spm,
                  "--dict", dictionary, "--destdir", str(tmp_path / "o4"), "--max-tokens-per-side", "0"])
    assert exit_info.value.code == 2 and "must be positive" in capsys.readouterr().err


def test_words_come_from_the_language_aware_tokenizer(tiny_data_bin, tmp_path):
    """Punctuation attached to a word is a word of its own, so a link reaches "Haus" in "Haus,"; the
    tokens handed to the aligner are the raw text at their offsets."""
    spm, dictionary = str(tiny_data_bin / "spm.model"), str(tiny_data_bin / "dict.txt")
    src = write(tmp_path / "p.en", ["The house, red."])
    tgt = write(tmp_path / "p.de", ["Das Haus, rot."])
    # moses words: The house , red .  /  Das Haus , rot .
    links = write(tmp_path / "links", ["0-0 1-1 2-2 3-3 4-4"])
    moses = align_corpus(src, tgt, "en", "de", spm, dictionary, str(tmp_path / "moses"), alignments_path=links,
                         word_tokenizer="moses")
    assert moses["word_tokenizer"] == "moses" and moses["drops"]["no_link"] == 0
    with pytest.raises(InputError, match=r"links:1: link .* points past the end"):
        # the same links over whitespace words (4 per side) point past the end
        align_corpus(src, tgt, "en", "de", spm, dictionary, str(tmp_path / "ws"), alignments_path=links)
    from preprocess.trelm_align import _word_tokenizer
    words = _word_tokenizer("auto", "de")("Das Haus, rot.")
    assert ["Das Haus, rot."[b:e] for b, e in words] == ["Das", "Haus", ",", "rot", "."]
