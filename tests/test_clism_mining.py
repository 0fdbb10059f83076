"""xsl-prep clism-spans / clism-binarize: projection on hand-made Pharaoh alignments, the
paper's filters, eflomal on a real slice, bad input, sub-token spans."""
import json

import pytest

from conftest import run_tool
from preprocess import InputError
from preprocess.clism_binarize import binarize_clism
from preprocess.clism_spans import cuts_a_word, mine_spans, symmetrize, target_words


def write(path, lines):
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def spans_of(record):
    return [(s["label"], s["src_text"], s["tgt_text"]) for s in record["spans"]]


# Pre-tokenised English / German with hand-made links (source word - target word).
HAND_MADE = [
    # 4 entities -> 4 [QUE]s; "on Monday" -> "am Montag" crosses "in Paris"
    ("Angela Merkel met Emmanuel Macron in Paris on Monday .",
     "Angela Merkel traf Emmanuel Macron am Montag in Paris .",
     "0-0 1-1 2-2 3-3 4-4 5-7 6-8 7-5 8-6 9-9"),
    # "Only one" is stop words only; Berlin survives
    ("Only one of them went to Berlin .", "Nur einer von ihnen fuhr nach Berlin .",
     "0-0 1-1 2-2 3-3 4-4 5-5 6-6 7-7"),
    # Google has no link; London and Tokyo both point at "London" (overlap: both dropped)
    ("Google and Microsoft opened offices in London and Tokyo .",
     "Google und Microsoft eröffneten Büros in London und Tokio .",
     "1-1 2-2 3-3 4-4 5-5 6-6 8-6 9-9"),
    # "The" of "The United Nations" is linked to "Die" but left out of the projection
    ("The United Nations met in Geneva .", "Die Vereinten Nationen trafen sich in Genf .",
     "0-0 1-1 2-2 3-3 3-4 4-5 5-6 6-7"),
    ("", "", ""),  # empty line: dropped and counted
    ("He left early .", "Er ging früh .", "0-0 1-1 2-2 3-3"),  # no entity
    # Berlin linked to the first and the 13th word: the hull is too long
    ("Berlin is big .", "Die Stadt , in der ich seit vielen Jahren gerne wohne , Berlin , ist groß .",
     "0-0 0-12 1-14 2-15 3-16"),
]


@pytest.fixture
def hand_made_files(tmp_path):
    src = write(tmp_path / "hand.en", [row[0] for row in HAND_MADE])
    tgt = write(tmp_path / "hand.de", [row[1] for row in HAND_MADE])
    links = write(tmp_path / "hand.align", [row[2] for row in HAND_MADE])
    return src, tgt, links


def test_pharaoh_projection_filters_and_counts(hand_made_files, tmp_path):
    src, tgt, links = hand_made_files
    out = tmp_path / "mined.jsonl"
    stats = mine_spans(str(src), str(tgt), str(out), alignments_path=str(links))
    records = read_jsonl(out)
    assert [r["line"] for r in records] == [1, 2, 3, 4]
    assert spans_of(records[0]) == [("PERSON", "Angela Merkel", "Angela Merkel"),
                                    ("PERSON", "Emmanuel Macron", "Emmanuel Macron"),
                                    ("GPE", "Paris", "Paris"), ("DATE", "Monday", "Montag")]
    assert spans_of(records[1]) == [("GPE", "Berlin", "Berlin")]
    assert spans_of(records[2]) == [("ORG", "Microsoft", "Microsoft")]
    assert spans_of(records[3]) == [("ORG", "The United Nations", "Vereinten Nationen"), ("GPE", "Geneva", "Genf")]
    # offsets are characters of the stripped lines
    first = records[0]["spans"][3]
    assert records[0]["src"][slice(*first["src"])] == "Monday" and records[0]["tgt"][slice(*first["tgt"])] == "Montag"

    assert stats.pairs_read == 7 and stats.pairs_kept == 4
    assert stats.pair_drops == {"empty_line": 1, "no_entity": 1, "no_span_left": 1}
    assert stats.span_drops == {"label_excluded": 0, "stop_words_only": 1, "word_boundary": 0,
                                "source_too_long": 0, "unaligned": 1, "target_too_long": 1, "overlap": 2}
    assert stats.spans_found == stats.spans_kept + sum(stats.span_drops.values()) == 13
    saved = json.loads((tmp_path / "mined.jsonl.stats.json").read_text())
    assert saved["span_drops"] == stats.span_drops and saved["inputs"]["aligner"] == "pharaoh file"


def test_label_and_length_options(hand_made_files, tmp_path):
    src, tgt, links = hand_made_files
    stats = mine_spans(str(src), str(tgt), str(tmp_path / "gpe.jsonl"), alignments_path=str(links),
                       entity_labels=["GPE"], max_span_words=1)
    records = read_jsonl(tmp_path / "gpe.jsonl")
    assert [spans_of(r) for r in records] == [[("GPE", "Paris", "Paris")], [("GPE", "Berlin", "Berlin")],
                                              [("GPE", "Geneva", "Genf")]]
    assert stats.span_drops["label_excluded"] == 7  # 2 PERSON, DATE, CARDINAL, 2 ORG (Google, Microsoft), ORG (UN)
    assert stats.span_drops["target_too_long"] == 1


def test_non_latin_targets_from_ntrex_with_two_entities(shared_data, tmp_path):
    """NTREX line 145 ("Death toll from Indonesia tsunami rises to 832") in Russian,
    Hindi and hand-segmented Chinese, with hand-made links: two [QUE]s each."""
    line = 145
    english = (shared_data / "ntrex" / "newstest2019-src.eng.txt").read_text(encoding="utf-8").splitlines()[line - 1]
    assert english == "Death toll from Indonesia tsunami rises to 832"

    def reference(code):
        return (shared_data / "ntrex" / f"newstest2019-ref.{code}.txt").read_text(encoding="utf-8").splitlines()[line - 1]

    chinese = reference("zho-CN")
    assert chinese == "印尼海啸死亡人数已上升到 832 人"
    cases = {
        # Число(0) жертв(1) индонезийского(2) цунами(3) выросло(4) до(5) 832(6) человек(7)
        "rus": (reference("rus"), "0-1 1-0 3-2 4-3 5-4 6-5 7-6", "индонезийского"),
        # इंडोनेशिया(0) सुनामी(1) की वजह से मृतकों(5) की संख्या(7) बढ़कर(8) 832(9) हो गई
        "hin": (reference("hin"), "3-0 4-1 0-5 1-7 5-8 7-9", "इंडोनेशिया"),
        # 印尼(0) 海啸(1) 死亡(2) 人数(3) 已(4) 上升(5) 到(6) 832(7) 人(8)
        "zho": ("印尼 海啸 死亡 人数 已 上升 到 832 人", "3-0 4-1 0-2 1-3 5-5 6-6 7-7", "印尼"),
    }
    for code, (target, links, country) in cases.items():
        src = write(tmp_path / f"{code}.en", [english])
        tgt = write(tmp_path / f"{code}.tgt", [target])
        alignment = write(tmp_path / f"{code}.align", [links])
        mine_spans(str(src), str(tgt), str(tmp_path / f"{code}.jsonl"), alignments_path=str(alignment))
        (record,) = read_jsonl(tmp_path / f"{code}.jsonl")
        assert spans_of(record) == [("GPE", "Indonesia", country), ("CARDINAL", "832", "832")], code
    assert "".join("印尼 海啸 死亡 人数 已 上升 到 832 人".split()) == chinese.replace(" ", "")


def test_alignment_errors_name_file_and_line(hand_made_files, tmp_path):
    src, tgt, _ = hand_made_files
    rows = [row[2] for row in HAND_MADE]
    past_end = write(tmp_path / "past.align", [rows[0], "0-0 6-8", *rows[2:]])
    with pytest.raises(InputError, match=r"past\.align:2: link 6-8 points past the end of the target sentence \(8 words\)"):
        mine_spans(str(src), str(tgt), str(tmp_path / "x.jsonl"), alignments_path=str(past_end))
    source_end = write(tmp_path / "src.align", [rows[0], "9-0", *rows[2:]])
    with pytest.raises(InputError, match=r"src\.align:2: .*past the end of the source sentence \(8 words\)"):
        mine_spans(str(src), str(tgt), str(tmp_path / "x.jsonl"), alignments_path=str(source_end))
    malformed = write(tmp_path / "bad.align", [rows[0], rows[1], "1:1", *rows[3:]])
    with pytest.raises(InputError, match=r"bad\.align:3: malformed alignment link '1:1'"):
        mine_spans(str(src), str(tgt), str(tmp_path / "x.jsonl"), alignments_path=str(malformed))
    short = write(tmp_path / "short.align", rows[:3])
    with pytest.raises(InputError, match=r"short\.align has 3 lines"):
        mine_spans(str(src), str(tgt), str(tmp_path / "x.jsonl"), alignments_path=str(short))


def test_cli_line_count_mismatch_exits_2(tmp_path):
    src = write(tmp_path / "a.en", ["Paris is nice .", "Berlin too ."])
    tgt = write(tmp_path / "a.de", ["Paris ist schön ."])
    proc = run_tool("xsl-prep", "clism-spans", "--src", src, "--tgt", tgt, "--output", tmp_path / "o.jsonl",
                    check=False)
    assert proc.returncode == 2
    assert "a.en has 2 lines, " in proc.stderr and "a.de has 1 lines" in proc.stderr


def test_word_boundary_target_words_and_symmetrization():
    text = "the AstraZeneca-owned lab, Obama's"
    assert cuts_a_word(text, 4, 10)  # "AstraZ" of "AstraZeneca"
    assert not cuts_a_word(text, 4, 15)  # "AstraZeneca" before "-owned"
    assert not cuts_a_word(text, 27, 32)  # "Obama" before "'s"
    sentence = "Er sagte: „Nordmazedonien“ 北京市, क्योंकि"
    words = [sentence[b:e] for b, e in target_words(sentence)]
    assert words == ["Er", "sagte", ":", "„", "Nordmazedonien", "“", "北", "京", "市", ",", "क्योंकि"]
    forward, reverse = {(0, 0), (1, 1), (2, 1)}, {(0, 0), (1, 1), (1, 2)}
    assert symmetrize(forward, reverse, "intersection") == {(0, 0), (1, 1)}
    assert symmetrize(forward, reverse, "union") == forward | reverse
    # grow-diag adds (2, 1) and (1, 2): neighbours of (1, 1) covering unaligned words
    assert symmetrize(forward, reverse, "grow-diag-final-and") == {(0, 0), (1, 1), (2, 1), (1, 2)}


def test_eflomal_on_real_slice(tiny_corpus, tmp_path):
    """eflomal has no seed: check the invariants, not exact links."""
    out = tmp_path / "ende.jsonl"
    stats = mine_spans(str(tiny_corpus["en"]), str(tiny_corpus["de"]), str(out))
    records = read_jsonl(out)
    assert stats.pairs_read == 300 and len(records) == stats.pairs_kept > 100
    assert stats.pairs_read == stats.pairs_kept + sum(stats.pair_drops.values())
    assert stats.spans_found == stats.spans_kept + sum(stats.span_drops.values())
    identical = 0
    for record in records:
        previous_end = -1
        for span in record["spans"]:
            assert record["src"][slice(*span["src"])] == span["src_text"]
            assert record["tgt"][slice(*span["tgt"])] == span["tgt_text"]
            assert span["src"][0] >= previous_end  # source order, no overlap
            previous_end = span["src"][1]
            identical += span["src_text"] == span["tgt_text"]
    # names and numbers are mostly written alike in German: a random aligner would not
    # land on the identical string for a fifth of the spans
    assert identical > 0.2 * stats.spans_kept, (identical, stats.spans_kept)


def test_binarize_sub_token_spans_and_bad_records(tiny_data_bin, tmp_path):
    from xsl_fairseq.data.dictionary import load_dictionary
    from xsl_fairseq.data.features import load_sequences
    from xsl_fairseq.evaluation.pretrained import TextEncoder

    src_text, tgt_text = "Angela Merkel met Emmanuel Macron in Paris.", "Angela Merkel traf Emmanuel Macron in Paris."
    paris_src, paris_tgt = src_text.index("Paris"), tgt_text.index("Paris")
    records = [
        {"src": src_text, "tgt": tgt_text,
         "spans": [{"src": [0, 13], "tgt": [0, 13]},
                   {"src": [paris_src, paris_src + 5], "tgt": [paris_tgt, paris_tgt + 5], "src_text": "Paris"}]},
        # "Be" ends inside a piece of "Berlin" (▁B|er|l|in with this vocabulary): the span is
        # dropped (subword_boundary), then the pair (no_span_left)
        {"src": "Berlin is big.", "tgt": "Berlin ist groß.", "spans": [{"src": [0, 2], "tgt": [0, 6]}]},
    ]
    mined = write(tmp_path / "m.jsonl", [json.dumps(r, ensure_ascii=False) for r in records])
    metadata = binarize_clism([str(mined)], str(tiny_data_bin / "spm.model"), str(tiny_data_bin / "dict.txt"),
                              str(tmp_path / "bin"))
    assert metadata["drops"] == {"subword_boundary": 1, "overlap": 0, "no_span_left": 1}
    assert metadata["splits"]["train"]["pairs"] == 1 and metadata["splits"]["train"]["spans"] == 2
    dictionary = load_dictionary(str(tiny_data_bin / "dict.txt"))
    assert metadata["dictionary_size"] == len(dictionary)
    encoder = TextEncoder(str(tiny_data_bin / "spm.model"), dictionary)
    src = load_sequences(str(tmp_path / "bin" / "train.src"))[0].tolist()
    tgt = load_sequences(str(tmp_path / "bin" / "train.tgt"))[0].tolist()
    spans = load_sequences(str(tmp_path / "bin" / "train.spans"))[0].view(-1, 4).tolist()
    assert src == encoder.encode(records[0]["src"]) and tgt == encoder.encode(records[0]["tgt"])
    for (s_first, s_last, t_first, t_last), text in zip(spans, ["Angela Merkel", "Paris"]):
        assert dictionary.string(src[s_first:s_last + 1]).replace(" ", "").replace("▁", " ").strip() == text
        assert dictionary.string(tgt[t_first:t_last + 1]).replace(" ", "").replace("▁", " ").strip() == text
    assert (tmp_path / "bin" / "spm.model").is_file() and (tmp_path / "bin" / "dict.txt").is_file()

    # with --widen-answers an answer cut inside a piece ("Be" of ▁B|er|lin) becomes its covering pieces
    widened = write(tmp_path / "widen.jsonl", [json.dumps(
        {"src": "Berlin is big.", "tgt": "Berlin ist groß.", "spans": [{"src": [0, 6], "tgt": [0, 2]}]})])
    with pytest.raises(InputError, match=r"widen\.jsonl: no pair with a usable span"):
        binarize_clism([str(widened)], str(tiny_data_bin / "spm.model"), str(tiny_data_bin / "dict.txt"),
                       str(tmp_path / "strict"))
    metadata = binarize_clism([str(widened)], str(tiny_data_bin / "spm.model"), str(tiny_data_bin / "dict.txt"),
                              str(tmp_path / "widened"), widen_answers=True)
    assert metadata["answers_widened"] == 1 and metadata["drops"]["subword_boundary"] == 0
    tgt = load_sequences(str(tmp_path / "widened" / "train.tgt"))[0].tolist()
    _, _, first, last = load_sequences(str(tmp_path / "widened" / "train.spans"))[0].tolist()
    assert dictionary.string(tgt[first:last + 1]).replace(" ", "").replace("▁", " ").strip() == "Ber"

    wrong_text = write(tmp_path / "w.jsonl", ['{"src": "Paris.", "tgt": "Paris.", "spans": []}',
                                              '{"src": "Paris.", "tgt": "Paris.", '
                                              '"spans": [{"src": [0, 5], "tgt": [0, 5], "tgt_text": "Pari"}]}'])
    with pytest.raises(InputError, match=r"w\.jsonl:2: tgt span \[0, 5\) covers 'Paris', not tgt_text 'Pari'"):
        binarize_clism([str(wrong_text)], str(tiny_data_bin / "spm.model"), str(tiny_data_bin / "dict.txt"),
                       str(tmp_path / "bin2"))
    broken = write(tmp_path / "b.jsonl", ['{"src": "Paris.", "tgt": "Paris."'])
    with pytest.raises(InputError, match=r"b\.jsonl:1: not valid JSON"):
        binarize_clism([str(broken)], str(tiny_data_bin / "spm.model"), str(tiny_data_bin / "dict.txt"),
                       str(tmp_path / "bin3"))
    outside = write(tmp_path / "o.jsonl", ['{"src": "Paris.", "tgt": "Paris.", "spans": [{"src": [0, 9], "tgt": [0, 5]}]}'])
    with pytest.raises(InputError, match=r"o\.jsonl:1: src span \[0, 9\) is outside the 6-character sentence"):
        binarize_clism([str(outside)], str(tiny_data_bin / "spm.model"), str(tiny_data_bin / "dict.txt"),
                       str(tmp_path / "bin4"))
