"""xsl-eval readers: the real evaluation files of shared/data, and errors naming file and line."""
import json

import pytest

from preprocess import InputError
from xsl_fairseq.evaluation.readers import (
    discover_language_files,
    read_conllu,
    read_iob2,
    read_line_aligned,
    read_sentence_pair_tsv,
    read_squad_json,
    read_xtreme_pos_tsv,
    short_language_code,
)


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def line_count(path):
    with open(path, encoding="utf-8", newline="\n") as handle:
        return sum(1 for _ in handle)


# -- sentence pairs: XNLI, PAWS-X -------------------------------------------------

def test_xnli_dev_de_has_every_line_as_an_example(shared_data):
    examples = read_sentence_pair_tsv(shared_data / "xnli" / "dev-de.tsv")
    assert len(examples) == 2490
    labels = [example.label for example in examples]
    assert {label: labels.count(label) for label in set(labels)} == {
        "entailment": 830, "neutral": 830, "contradiction": 830}
    assert all(example.text_a and example.text_b for example in examples)


def test_pawsx_csv_quoting_is_removed_and_no_line_is_lost(shared_data):
    for path in sorted((shared_data / "pawsx").glob("dev-*.tsv")):
        examples = read_sentence_pair_tsv(path)
        assert len(examples) == line_count(path) == 2000, path
        assert {example.label for example in examples} == {"0", "1"}
    german = read_sentence_pair_tsv(shared_data / "pawsx" / "dev-de.tsv")
    # line 341: second field is "\"\"\"Everything But You\"\" ist ... James .\""
    assert german[340].text_b.startswith('"Everything But You" ist ein Song')
    assert german[340].text_b.endswith("Harry James .")
    assert german[340].text_a.startswith("„Everything But You“")  # unquoted field left alone
    # line 115: "... Album "", weil ..." -> a single quote mark inside the text
    assert german[114].text_a == ('Siebenberg bezeichnete ihn als seinen Lieblingssong auf dem '
                                  'Album ", weil er so rein und persönlich ist.')


def test_pawsx_english_dev_reads_2000_pairs(shared_data):
    examples = read_sentence_pair_tsv(shared_data / "pawsx" / "dev-en.tsv")
    assert len(examples) == 2000
    assert examples[0].text_a.startswith("From the merger of the Four Rivers Council")
    assert examples[0].label == "1"


def test_sentence_pair_quotes_inside_unquoted_or_unbalanced_fields_are_text(tmp_path):
    path = write(tmp_path / "pairs.tsv",
                 'He said "hi" twice\t"A ""quoted"" word"\t1\n'
                 '"Yes" he said\tok\t0\n'
                 '"tab\tinside"\tok\t0\n')
    first, second, third = read_sentence_pair_tsv(path)
    assert (first.text_a, first.text_b) == ('He said "hi" twice', 'A "quoted" word')
    assert second.text_a == '"Yes" he said'  # not valid CSV: kept verbatim
    assert third.text_a == "tab\tinside"


def test_sentence_pair_header_selects_columns_by_name(tmp_path):
    path = write(tmp_path / "dev_2k.tsv",
                 "id\tsentence1\tsentence2\tlabel\n"
                 "7\tA cat sat .\tA cat was sitting .\t1\n")
    (example,) = read_sentence_pair_tsv(path)
    assert (example.text_a, example.text_b, example.label) == ("A cat sat .", "A cat was sitting .", "1")


def test_sentence_pair_errors_name_file_and_line(tmp_path):
    path = write(tmp_path / "dev-xx.tsv", "a\tb\tentailment\na\tb\n")
    with pytest.raises(InputError, match=r"dev-xx\.tsv:2: expected 3 tab-separated fields.*found 2"):
        read_sentence_pair_tsv(path)
    write(path, "a\tb\tneutral\n\na\tb\tneutral\n")
    with pytest.raises(InputError, match=r"dev-xx\.tsv:2: "):
        read_sentence_pair_tsv(path)
    write(path, "a\tb\t \n")
    with pytest.raises(InputError, match=r"dev-xx\.tsv:1: empty label"):
        read_sentence_pair_tsv(path)
    (tmp_path / "latin1.tsv").write_bytes("caf\xe9\tb\t0\n".encode("latin-1"))
    with pytest.raises(InputError, match=r"latin1\.tsv:1: not valid UTF-8"):
        read_sentence_pair_tsv(tmp_path / "latin1.tsv")


# -- language discovery -----------------------------------------------------------

def test_discover_xtreme_tsv_layouts(shared_data):
    xnli = discover_language_files(shared_data / "xnli", "xtreme_tsv", "dev")
    assert sorted(xnli) == sorted("ar bg de el en es fr hi ru sw th tr ur vi zh".split())
    assert xnli["de"].name == "dev-de.tsv"
    pawsx = discover_language_files(shared_data / "pawsx", "xtreme_tsv", "dev")
    assert sorted(pawsx) == ["de", "en", "es", "fr", "ja", "ko", "zh"]  # dev_ids.txt ignored
    pos_dev = discover_language_files(shared_data / "xtreme_udpos", "xtreme_tsv", "dev")
    assert len(pos_dev) == 28 and "en" not in pos_dev
    assert list(discover_language_files(shared_data / "xtreme_udpos", "xtreme_tsv", "train")) == ["en"]


def test_discover_mlqa_finds_same_language_files_in_the_split_folder(shared_data):
    files = discover_language_files(shared_data / "mlqa", "mlqa", "dev")  # mlqa/dev/...
    assert sorted(files) == ["ar", "de", "en", "es", "hi", "vi", "zh"]
    assert files["zh"].name == "dev-context-zh-question-zh.json"


def test_discover_mlqa_ignores_cross_language_files_and_reads_xquad_names(tmp_path):
    for name in ["test-context-de-question-de.json", "test-context-de-question-en.json",
                 "dev-context-es-question-es.json", "xquad.ru.json"]:
        write(tmp_path / name, "{}")
    files = discover_language_files(tmp_path, "mlqa", "test")
    assert {lang: path.name for lang, path in files.items()} == {
        "de": "test-context-de-question-de.json", "ru": "xquad.ru.json"}


def test_discover_conllu_maps_language_to_its_treebank_files(shared_data, tmp_path):
    test = discover_language_files(shared_data / "ud", "conllu", "test")
    assert sorted(test) == ["ar", "de", "en", "es", "fr", "hi", "ru", "zh"]
    assert [path.name for path in test["de"]] == ["de_gsd-ud-test.conllu"]
    dev = discover_language_files(shared_data / "ud", "conllu", "dev")
    assert sorted(dev) == ["de", "en", "es", "fr", "ru", "zh"]
    for treebank in ["en_ewt", "en_pud"]:
        (tmp_path / treebank).mkdir()
        write(tmp_path / treebank / f"{treebank}-ud-test.conllu", "")
    two = discover_language_files(tmp_path, "conllu", "test")
    assert [path.name for path in two["en"]] == ["en_ewt-ud-test.conllu", "en_pud-ud-test.conllu"]


def test_discover_iob2_masakhaner_and_uner_layouts(shared_data):
    v1 = discover_language_files(shared_data / "masakhaner" / "v1", "iob2", "dev")
    assert sorted(v1) == sorted("amh hau ibo kin lug luo pcm swa wol yor".split())
    assert v1["swa"] == [shared_data / "masakhaner" / "v1" / "swa" / "dev.txt"]
    assert len(discover_language_files(shared_data / "masakhaner" / "v2", "iob2", "test")) == 20
    uner = discover_language_files(shared_data / "uner", "iob2", "dev")
    assert uner == {"en": [shared_data / "uner" / "en_ewt" / "en_ewt-ud-dev.iob2"]}


def test_discover_retrieval_flores_and_ntrex_pair_each_language_with_english(shared_data):
    flores = discover_language_files(shared_data / "flores101", "retrieval", "devtest")
    assert len(flores) == 16 and "eng" not in flores
    assert flores["zho_simpl"] == (shared_data / "flores101" / "devtest" / "zho_simpl.devtest",
                                   shared_data / "flores101" / "devtest" / "eng.devtest")
    ntrex = discover_language_files(shared_data / "ntrex", "retrieval", "test")
    assert len(ntrex) == 16
    assert ntrex["deu"] == (shared_data / "ntrex" / "newstest2019-ref.deu.txt",
                            shared_data / "ntrex" / "newstest2019-src.eng.txt")
    assert short_language_code("zho-CN") in {short_language_code(code) for code in flores}


def test_discover_retrieval_tatoeba_needs_both_sides(tmp_path):
    for name in ["tatoeba.deu-eng.deu", "tatoeba.deu-eng.eng", "tatoeba.fra-eng.fra"]:
        write(tmp_path / name, "x\n")
    files = discover_language_files(tmp_path, "retrieval", "test")
    assert files == {"deu": (tmp_path / "tatoeba.deu-eng.deu", tmp_path / "tatoeba.deu-eng.eng")}


def test_discover_errors(tmp_path):
    with pytest.raises(InputError, match="evaluation directory not found"):
        discover_language_files(tmp_path / "missing", "xtreme_tsv", "dev")
    with pytest.raises(InputError, match="unknown evaluation layout"):
        discover_language_files(tmp_path, "json", "dev")
    write(tmp_path / "test-de.tsv", "")
    with pytest.raises(InputError, match=r"no xtreme_tsv files for split 'dev'"):
        discover_language_files(tmp_path, "xtreme_tsv", "dev")


def test_short_language_codes():
    assert [short_language_code(code) for code in ["deu", "zho_simpl", "zho-CN", "arb", "swh", "deu_Latn"]] \
        == ["de", "zh", "zh", "ar", "sw", "de"]
    assert short_language_code("de") == "de" and short_language_code("zho_trad") == "zho_trad"


# -- SQuAD JSON: MLQA ---------------------------------------------------------------

def test_mlqa_de_dev_questions_and_answer_offsets(shared_data):
    examples = read_squad_json(shared_data / "mlqa" / "dev" / "dev-context-de-question-de.json")
    assert len(examples) == 512
    assert len({example.qid for example in examples}) == 512
    assert all(example.answer_matches_context(i) for example in examples
               for i in range(len(example.answers)))
    first = examples[0]
    assert first.question.startswith("Was war die Position der Berliner")
    assert first.answers == ["überwiegend antibritisch und prorussisch"]
    assert first.answer_starts == [1591]


def squad_file(path, answers, qid="q1"):
    data = {"version": "1.1", "data": [{"title": "t", "paragraphs": [
        {"context": "The cat sat on the mat.", "qas": [
            {"id": qid, "question": "Where?", "answers": answers}]}]}]}
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_squad_offset_mismatch_is_kept_with_a_warning_or_rejected_when_strict(tmp_path, caplog):
    path = squad_file(tmp_path / "qa.json", [{"text": "the mat", "answer_start": 15},
                                             {"text": "the mat", "answer_start": 3}])
    (example,) = read_squad_json(path)
    assert example.answer_starts == [15, 3]
    assert [example.answer_matches_context(i) for i in range(2)] == [True, False]
    assert "1 answers whose answer_start does not point at their text" in caplog.text
    with pytest.raises(InputError, match=r"qa\.json:data\[0\]\.paragraphs\[0\]\.qas\[0\]\.answers\[1\]: "
                                         r"answer_start 3"):
        read_squad_json(path, strict_offsets=True)


def test_squad_errors_name_file_and_position(tmp_path):
    path = squad_file(tmp_path / "qa.json", [])
    with pytest.raises(InputError, match=r"qa\.json:data\[0\]\.paragraphs\[0\]\.qas\[0\]: .*no answer"):
        read_squad_json(path)
    squad_file(path, [{"text": "the mat"}])
    with pytest.raises(InputError, match=r"qas\[0\]\.answers\[0\]: missing or invalid 'answer_start'"):
        read_squad_json(path)
    write(path, '{"data": [\n  {"paragraphs": [}\n]}')
    with pytest.raises(InputError, match=r"qa\.json:2: not valid JSON"):
        read_squad_json(path)


# -- IOB2 NER: MasakhaNER, UNER ------------------------------------------------------

def test_masakhaner_reads_every_sentence_even_one_starting_with_a_hash_token(shared_data):
    path = shared_data / "masakhaner" / "v2" / "kin" / "test.txt"
    sentences = read_iob2(path)
    blank_lines = sum(1 for line in open(path, encoding="utf-8") if not line.strip())
    assert len(sentences) == blank_lines == 2235
    tokens, tags = sentences[0]
    assert tokens[:3] == ["#", "Kwibohora", "27"] and tags[:3] == ["O", "B-DATE", "I-DATE"]
    types = {tag[2:] for _, tags in sentences for tag in tags if tag != "O"}
    assert types == {"PER", "ORG", "LOC", "DATE"}


def test_uner_layout_takes_the_third_column_as_tag(shared_data):
    sentences = read_iob2(shared_data / "uner" / "en_ewt" / "en_ewt-ud-dev.iob2")
    assert len(sentences) == 2001
    tokens, tags = sentences[0]
    assert tokens[6:8] == ["tampa", "bay"] and tags[6:8] == ["B-LOC", "I-LOC"]
    assert len(tokens) == 24
    assert {tag for _, tags in sentences for tag in tags} == {
        "O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC"}


def test_iob2_conll_columns_with_docstart(tmp_path):
    path = write(tmp_path / "conll.txt",
                 "-DOCSTART- -X- -X- O\n\nEU NNP B-NP B-ORG\nrejects VBZ B-VP O\n\n\n"
                 "Peter NNP B-NP B-PER\n")
    assert read_iob2(path) == [(["EU", "rejects"], ["B-ORG", "O"]), (["Peter"], ["B-PER"])]


def test_iob2_errors_name_file_and_line(tmp_path):
    path = write(tmp_path / "dev.txt", "Kampala B-LOC\nni O\nmji LOCATION\n")
    with pytest.raises(InputError, match=r"dev\.txt:3: tag 'LOCATION' is not O, B-TYPE or I-TYPE"):
        read_iob2(path)
    write(path, "Kampala B-LOC\nalone\n")
    with pytest.raises(InputError, match=r"dev\.txt:2: expected a token and a tag"):
        read_iob2(path)
    uner = write(tmp_path / "xx_pud-ud-test.iob2", "# sent_id = 1\n1\tKampala\tB-LOC\t-\t-\n2\tni\n")
    with pytest.raises(InputError, match=r"xx_pud-ud-test\.iob2:3: expected id<TAB>token<TAB>tag"):
        read_iob2(uner)


# -- POS: CoNLL-U and XTREME tsv ------------------------------------------------------

def test_conllu_keeps_syntactic_words_only(shared_data):
    german = read_conllu(shared_data / "ud" / "de_gsd" / "de_gsd-ud-dev.conllu")
    assert len(german) == 799
    assert sum(len(forms) for forms, _ in german) == 12480  # word lines; 164 ranges skipped
    assert german[0] == (["Manasse", "ist", "ein", "einzigartiger", "Parfümeur", "."],
                         ["PROPN", "AUX", "DET", "ADJ", "NOUN", "PUNCT"])
    english = read_conllu(shared_data / "ud" / "en_ewt" / "en_ewt-ud-dev.conllu")
    assert len(english) == 2001 and sum(len(forms) for forms, _ in english) == 25147  # no empty nodes


def conllu_line(word_id, form, upos):
    return "\t".join([word_id, form, "_", upos, "_", "_", "_", "_", "_", "_"]) + "\n"


def test_conllu_skips_multiword_ranges_and_empty_nodes(tmp_path):
    path = write(tmp_path / "xx_tb-ud-test.conllu",
                 "# text = zum Haus\n" + conllu_line("1-2", "zum", "_") + conllu_line("1", "zu", "ADP")
                 + conllu_line("2", "dem", "DET") + conllu_line("2.1", "ging", "VERB")
                 + conllu_line("3", "Haus", "NOUN") + "\n")
    assert read_conllu(path) == [(["zu", "dem", "Haus"], ["ADP", "DET", "NOUN"])]


def test_conllu_errors_name_file_and_line(tmp_path):
    path = write(tmp_path / "bad.conllu", conllu_line("1", "a", "DET") + "2\tb\tNOUN\n")
    with pytest.raises(InputError, match=r"bad\.conllu:2: a CoNLL-U word line has 10 tab-separated columns"):
        read_conllu(path)
    write(path, conllu_line("1", "a", "DET") + conllu_line("1", "b", "NOUN"))
    with pytest.raises(InputError, match=r"bad\.conllu:2: word id 1 where 2 was expected"):
        read_conllu(path)


def test_xtreme_pos_japanese_dev(shared_data):
    sentences = read_xtreme_pos_tsv(shared_data / "xtreme_udpos" / "dev-ja.tsv")
    assert len(sentences) == 511  # the last sentence has no blank line after it
    assert sum(len(tokens) for tokens, _ in sentences) == 11477
    assert sentences[0][1][:3] == ["CCONJ", "PUNCT", "NUM"]


def test_xtreme_pos_errors_name_file_and_line(tmp_path):
    path = write(tmp_path / "test-xx.tsv", "Hello\tINTJ\n\nworld\n")
    with pytest.raises(InputError, match=r"test-xx\.tsv:3: expected token<TAB>UPOS"):
        read_xtreme_pos_tsv(path)


# -- line-aligned text ---------------------------------------------------------------

def test_flores_line_aligned_pairs(shared_data):
    devtest = shared_data / "flores101" / "devtest"
    pairs = read_line_aligned(devtest / "deu.devtest", devtest / "eng.devtest")
    assert len(pairs) == 1012
    english = (devtest / "eng.devtest").read_text(encoding="utf-8").split("\n")
    assert pairs[5][1] == english[5] and pairs[5][0] != english[5]


def test_line_aligned_keeps_empty_lines_and_splits_on_newline_only(tmp_path):
    a = write(tmp_path / "a.txt", "eins\u2028zwei\n\ndrei\n")
    b = write(tmp_path / "b.txt", "one two\n\nthree\n")
    assert read_line_aligned(a, b) == [("eins\u2028zwei", "one two"), ("", ""), ("drei", "three")]


def test_line_aligned_count_mismatch_names_both_files_and_counts(tmp_path):
    a = write(tmp_path / "a.txt", "1\n2\n3\n")
    b = write(tmp_path / "b.txt", "1\n2\n")
    with pytest.raises(InputError, match=r"a\.txt:3: .*a\.txt has 3 lines but .*b\.txt has 2"):
        read_line_aligned(a, b)
