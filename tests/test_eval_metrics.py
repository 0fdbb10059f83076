"""xsl-eval metrics on hand-made cases whose expected values are worked out in the comments."""
import ast
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from xsl_fairseq.evaluation import metrics
from xsl_fairseq.evaluation.metrics import (
    accuracy,
    markdown_table,
    markdown_table_multi,
    mean_and_std,
    ner_f1,
    restrict_to_types,
    retrieval_accuracy,
    seed_summary,
    shared_entity_types,
    squad_exact_match,
    squad_f1,
    squad_normalize_answer,
    squad_scores,
)
from xsl_fairseq.evaluation.readers import QAExample, read_iob2


# -- SQuAD v1.1 (lang=None) ----------------------------------------------------------

def test_squad_f1_of_partial_overlap():
    # "cat sat" vs "cat sat on": 2 shared tokens, precision 2/2, recall 2/3 -> F1 0.8
    assert squad_f1("the cat sat", "a cat sat on") == pytest.approx(0.8)
    assert squad_exact_match("the cat sat", "a cat sat on") == 0.0


def test_squad_normalisation_drops_case_ascii_punctuation_articles_and_extra_space():
    assert squad_normalize_answer("The  Cat, sat!") == "cat sat"
    assert squad_exact_match("Hello, world!", "hello world") == 1.0
    assert squad_f1("", "") == 0.0  # v1.1: no shared token scores 0, even for two empty answers


def test_squad_keeps_unicode_punctuation_but_mlqa_english_drops_it():
    # SQuAD v1.1 removes string.punctuation only: "«the cat»" -> "« cat»" (2 tokens, none is "cat")
    assert squad_normalize_answer("«the cat»") == "« cat»"
    assert squad_f1("«the cat»", "cat") == 0.0
    assert squad_exact_match("«the cat»", "cat", lang="en") == 1.0


# -- MLQA language-specific normalisation ---------------------------------------------

def test_mlqa_german_articles():
    assert squad_exact_match("der Hund", "Hund", lang="de") == 1.0
    # without German rules "der" stays: precision 1/2, recall 1/1 -> F1 2/3
    assert squad_f1("der Hund", "Hund") == pytest.approx(2 / 3)
    assert squad_normalize_answer("Dieser Hund", lang="de") == "dieser hund"  # whole words only


def test_mlqa_spanish_articles():
    assert squad_exact_match("los perros", "perros", lang="es") == 1.0
    # "casa blanca" vs "casa": precision 1/2, recall 1 -> 2/3
    assert squad_f1("La casa blanca", "una casa", lang="es") == pytest.approx(2 / 3)


def test_mlqa_chinese_is_scored_per_character():
    # 北 京 大 学 vs 北 京: 2 shared, precision 2/4, recall 2/2 -> F1 2/3
    assert squad_f1("北京大学", "北京", lang="zh") == pytest.approx(2 / 3)
    assert squad_f1("北京大学", "北京") == 0.0  # whitespace tokens: one token each, different
    assert squad_normalize_answer("2008年北京奥运会", lang="zh") == "2008 年 北 京 奥 运 会"
    assert squad_normalize_answer("iPhone手机，", lang="zh") == "iphone 手 机"  # full-width comma dropped


def test_mlqa_vietnamese_arabic_and_hindi_rules():
    assert squad_exact_match("những con mèo", "con mèo", lang="vi") == 1.0
    assert squad_normalize_answer("الكتاب", lang="ar") == "كتاب"
    # the official pattern removes "ال" inside words too (سؤال -> سؤ); kept for comparability
    assert squad_normalize_answer("سؤال", lang="ar") == "سؤ"
    assert squad_normalize_answer("एक किताब।", lang="hi") == "एक किताब"  # no articles; danda dropped


def test_language_unknown_to_mlqa_falls_back_to_squad_rules(caplog):
    metrics._warn_no_mlqa_rules.cache_clear()  # the warning is logged once per language
    assert squad_normalize_answer("«The cat»", lang="ru") == squad_normalize_answer("«The cat»")
    assert "MLQA has no answer normalisation for 'ru'" in caplog.text


def test_squad_scores_take_the_best_gold_answer_and_count_unanswered_as_zero(caplog):
    examples = [
        QAExample("q1", "?", "ctx", ["the cat", "a dog"], [0, 0]),  # "dog": EM 1, F1 1
        QAExample("q2", "?", "ctx", ["Paris"], [0]),                 # "in Paris": EM 0, F1 2/3
        QAExample("q3", "?", "ctx", ["Rome"], [0]),                  # no prediction: 0
    ]
    scores = squad_scores({"q1": "dog", "q2": "in Paris", "other": "x"}, examples)
    assert scores["exact_match"] == pytest.approx(100 / 3)
    assert scores["f1"] == pytest.approx(100 * (1 + 2 / 3) / 3)
    assert "1 of 3 questions have no prediction" in caplog.text


# -- classification, NER --------------------------------------------------------------

def test_accuracy_is_a_percentage():
    assert accuracy(["a", "b", "c", "d"], ["a", "b", "x", "d"]) == 75.0
    with pytest.raises(ValueError, match="3 predictions for 2 labels"):
        accuracy([1, 2, 3], [1, 2])


def test_ner_f1_is_entity_level():
    gold = [["B-PER", "I-PER", "O", "B-LOC"]]
    pred = [["B-PER", "I-PER", "O", "B-ORG"]]
    # entities: gold {PER 0-1, LOC 3}, predicted {PER 0-1, ORG 3}: 1 of 2 right each way
    scores = ner_f1(gold, pred)
    assert (scores["precision"], scores["recall"], scores["f1"]) == (50.0, 50.0, 50.0)
    assert scores["per_type"]["PER"]["f1"] == 100.0 and scores["per_type"]["LOC"]["support"] == 1
    assert scores["gold_entities"] == 2
    assert ner_f1(gold, pred, keep_types={"PER"})["f1"] == 100.0


def test_ner_f1_reads_a_stray_inside_tag_as_an_entity_start():
    # seqeval's default (conlleval) mode: O I-PER I-PER is one PER entity
    assert ner_f1([["O", "I-PER", "I-PER"]], [["O", "B-PER", "I-PER"]])["f1"] == 100.0


def test_ner_f1_rejects_misaligned_sentences():
    with pytest.raises(ValueError, match="sentence 0: 1 predicted tags for 2 gold tags"):
        ner_f1([["O", "O"]], [["O"]])


def test_restrict_to_types_turns_other_types_into_o():
    assert restrict_to_types([["B-DATE", "I-DATE", "O", "B-PER"]], {"PER"}) == [["O", "O", "O", "B-PER"]]


def test_uner_and_masakhaner_share_per_org_loc_and_not_date(shared_data):
    english = [tags for _, tags in read_iob2(shared_data / "uner" / "en_ewt" / "en_ewt-ud-dev.iob2")]
    swahili = [tags for _, tags in read_iob2(shared_data / "masakhaner" / "v1" / "swa" / "dev.txt")]
    assert shared_entity_types(english, swahili) == ({"PER", "ORG", "LOC"}, {"DATE"})


# -- retrieval --------------------------------------------------------------------------

def test_retrieval_accuracy_in_both_directions():
    # angles: src 0°, 90°, 45°; tgt 5.7°, 84.3°, 11.3°. src->tgt all right; but tgt row 2
    # (11.3°) is nearer src row 0 (0°) than its own src row 2 (45°): tgt->src 2 of 3.
    src = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    tgt = np.array([[1.0, 0.1], [0.1, 1.0], [1.0, 0.2]])
    assert retrieval_accuracy(src, tgt) == pytest.approx((100.0, 200 / 3))
    # cosine: row scale does not matter; torch tensors work too
    scaled = torch.tensor(tgt * np.array([[3.0], [0.5], [7.0]]), dtype=torch.float32)
    assert retrieval_accuracy(torch.tensor(src), scaled) == pytest.approx((100.0, 200 / 3))


def test_retrieval_ties_go_to_the_first_row():
    same = [[1.0, 0.0], [1.0, 0.0]]  # two identical sentences: the second retrieves the first
    assert retrieval_accuracy(same, same) == (50.0, 50.0)
    with pytest.raises(ValueError, match="same shape"):
        retrieval_accuracy([[1.0, 0.0]], [[1.0, 0.0], [0.0, 1.0]])


# -- summaries and tables ------------------------------------------------------------

def test_mean_and_sample_std():
    mean, std = mean_and_std([1, 2, 3, 4])
    assert mean == 2.5 and std == pytest.approx(math.sqrt(5 / 3))  # squares 2.25+.25+.25+2.25 over n-1
    assert mean_and_std([7.0]) == (7.0, 0.0)
    with pytest.raises(ValueError):
        mean_and_std([])


def test_markdown_table_puts_english_first_and_averages_the_others():
    table = markdown_table({"de": 70.0, "en": 80.0, "ar": 60.04}, metric_name="accuracy")
    assert table.split("\n") == [
        "| metric | en | ar | de | avg (non-en) |",
        "|---|---:|---:|---:|---:|",
        "| accuracy | 80.0 | 60.0 | 70.0 | 65.0 |",  # (60.04 + 70) / 2 = 65.02
    ]


def test_markdown_table_multi_rows_of_metrics_with_a_missing_cell():
    table = markdown_table_multi({"f1": {"en": 80, "de": 70}, "exact_match": {"en": 60, "de": 50, "zh": 40}},
                                 row_header="metric")
    assert table.split("\n")[0] == "| metric | en | de | zh | avg (non-en) |"
    assert table.split("\n")[2:] == ["| f1 | 80.0 | 70.0 | - | 70.0 |",
                                      "| exact_match | 60.0 | 50.0 | 40.0 | 45.0 |"]


def test_seed_summary_row_shows_mean_and_std_and_averages_per_seed():
    # per-seed non-English averages: (70+60)/2 = 65 and (72+66)/2 = 69 -> 67 ± 2.83
    summary = seed_summary([{"en": 80, "de": 70, "fr": 60}, {"en": 82, "de": 72, "fr": 66}])
    assert summary["avg (non-en)"] == pytest.approx((67.0, math.sqrt(8)))
    table = markdown_table_multi({"mean ± std": summary})
    assert table.split("\n")[2] == "| mean ± std | 81.0 ± 1.4 | 71.0 ± 1.4 | 63.0 ± 4.2 | 67.0 ± 2.8 |"


def test_readers_and_metrics_import_neither_torch_nor_fairseq_at_module_level():
    for module in ["readers.py", "metrics.py"]:
        tree = ast.parse((Path(metrics.__file__).parent / module).read_text(encoding="utf-8"))
        imported = {alias.name.split(".")[0] for node in tree.body if isinstance(node, ast.Import)
                    for alias in node.names}
        imported |= {node.module.split(".")[0] for node in tree.body
                     if isinstance(node, ast.ImportFrom) and node.module}
        assert not imported & {"torch", "fairseq"}, module
