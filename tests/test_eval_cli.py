"""xsl-eval end to end on tiny slices of ../shared/data with a tiny pretrained model."""
import json

import pytest

from conftest import run_tool
from xsl_fairseq.evaluation.cli import main as xsl_eval


@pytest.fixture(scope="module")
def tiny_pretrained(tiny_data_bin, tmp_path_factory):
    """A 2-layer xsl_roberta after a few MLM updates (its dict/spm sit in data-bin/)."""
    save_dir = tmp_path_factory.mktemp("pretrained")
    run_tool("fairseq-train", tiny_data_bin / "mono", "--user-dir", "xsl_fairseq",
             "--task", "xsl_masked_lm", "--criterion", "xsl_masked_lm", "--arch", "xsl_roberta_tiny",
             "--tokens-per-sample", 64, "--sample-break-mode", "complete",
             "--skip-invalid-size-inputs-valid-test", "--optimizer", "adam", "--lr", "1e-3",
             "--batch-size", 16, "--max-update", 10, "--cpu", "--num-workers", 0,
             "--save-dir", save_dir, "--no-epoch-checkpoints", "--disable-validation")
    return save_dir / "checkpoint_last.pt"


def tiny_finetuning(tmp_path, train, *extra):
    return ["--train", train, "--out", tmp_path / "out", "--max-train-examples", 48,
            "--max-eval-examples", 24, "--epochs", 1, "--batch-size", 16, *map(str, extra)]


def read_results(tmp_path):
    results = json.loads((tmp_path / "out" / "results.json").read_text(encoding="utf-8"))
    table = (tmp_path / "out" / "results.md").read_text(encoding="utf-8")
    assert list((tmp_path / "out" / "tensorboard" / "eval").glob("events.out.tfevents.*"))
    return results, table


def test_sentence_pair_xnli_with_two_seeds(tiny_pretrained, shared_data, tmp_path):
    assert xsl_eval(["sentence-pair", "--checkpoint", str(tiny_pretrained),
                     "--eval-dir", str(shared_data / "xnli"), "--languages", "en,de,sw,xx",
                     *map(str, tiny_finetuning(tmp_path, shared_data / "xnli" / "dev-en.tsv", "--seeds", "1,2"))]) == 0
    results, table = read_results(tmp_path)
    assert set(results["languages"]) == {"en", "de", "sw"}
    assert results["config"]["skipped_languages"] == ["xx"]
    de = results["languages"]["de"]
    assert de["examples"] == 24 and len(de["accuracy"]["per_seed"]) == 2
    assert all(0 <= v <= 100 for v in de["accuracy"]["per_seed"])
    assert results["config"]["finetune"]["lr"] == 2e-5  # XTREME default, recorded
    assert results["config"]["arguments"]["max_train_examples"] == 48
    assert "avg" in table and "| de" in table.replace("|de", "| de")


def test_pawsx_reads_quoted_fields_and_holds_out_parallel_items(tiny_pretrained, shared_data, tmp_path):
    # items 1..10 of every language are evaluated only; English trains on the items after them
    assert xsl_eval(["sentence-pair", "--checkpoint", str(tiny_pretrained), "--held-out-items", "10",
                     "--eval-dir", str(shared_data / "pawsx"), "--languages", "en,ja",
                     *map(str, tiny_finetuning(tmp_path, shared_data / "pawsx" / "dev-en.tsv"))]) == 0
    results, _ = read_results(tmp_path)
    assert set(results["languages"]) == {"en", "ja"}
    assert results["languages"]["en"]["examples"] == results["languages"]["ja"]["examples"] == 10


def test_held_out_items_must_leave_training_items(tiny_pretrained, shared_data, tmp_path, capsys):
    train = shared_data / "xnli" / "dev-en.tsv"
    assert xsl_eval(["sentence-pair", "--checkpoint", str(tiny_pretrained), "--held-out-items", "2490",
                     "--eval-dir", str(shared_data / "xnli"), "--languages", "de",
                     *map(str, tiny_finetuning(tmp_path, train))]) != 0
    assert f"{train}: --held-out-items 2490 leaves none of its 2490 items for training" in capsys.readouterr().err


def test_qa_mlqa(tiny_pretrained, shared_data, tmp_path):
    mlqa = shared_data / "mlqa" / "dev"
    train = next(mlqa.glob("dev-context-en-question-en.json"))
    assert xsl_eval(["qa", "--checkpoint", str(tiny_pretrained), "--eval-dir", str(mlqa),
                     "--languages", "en,de,zh", "--max-seq-length", "64", "--max-query-length", "20",
                     "--doc-stride", "24",
                     *map(str, tiny_finetuning(tmp_path, train))]) == 0
    results, table = read_results(tmp_path)
    assert set(results["languages"]) == {"en", "de", "zh"}
    for lang in ("de", "zh"):
        assert 0 <= results["languages"][lang]["exact_match"]["mean"] <= results["languages"][lang]["f1"]["mean"] <= 100
    assert results["config"]["train_windows"] >= 48


def test_ner_masakhaner_reports_ignored_types(tiny_pretrained, shared_data, tmp_path):
    train = next((shared_data / "uner").rglob("*-ud-dev.iob2"))
    assert xsl_eval(["ner", "--checkpoint", str(tiny_pretrained), "--eval-dir",
                     str(shared_data / "masakhaner" / "v1"), "--languages", "swa,yor",
                     *map(str, tiny_finetuning(tmp_path, train))]) == 0
    results, _ = read_results(tmp_path)
    assert set(results["languages"]) == {"swa", "yor"}
    assert "DATE" in results["config"]["ignored_entity_types"]["swa"]
    assert set(results["config"]["evaluated_entity_types"]["swa"]) <= {"PER", "ORG", "LOC"}


def test_pos_conllu(tiny_pretrained, shared_data, tmp_path):
    ud = shared_data / "ud"
    train = next(ud.rglob("en_ewt-ud-train.conllu"))
    assert xsl_eval(["pos", "--checkpoint", str(tiny_pretrained), "--eval-dir", str(ud),
                     "--languages", "de,zh", "--label-subtokens", "all",
                     *map(str, tiny_finetuning(tmp_path, train))]) == 0
    results, _ = read_results(tmp_path)
    assert set(results["languages"]) == {"de", "zh"}
    assert results["languages"]["de"]["examples"] == 24


def test_retrieval_flores(tiny_pretrained, shared_data, tmp_path):
    assert xsl_eval(["retrieval", "--checkpoint", str(tiny_pretrained),
                     "--eval-dir", str(shared_data / "flores101"), "--split", "devtest",
                     "--languages", "deu,rus", "--max-eval-examples", "50", "--out", str(tmp_path / "out")]) == 0
    results, _ = read_results(tmp_path)
    assert set(results["languages"]) == {"deu", "rus"}
    deu = results["languages"]["deu"]
    # 50 candidates: chance is 2%; even a barely trained model shares digits and names
    assert 0 <= deu["xx_to_en"]["mean"] <= 100 and deu["examples"] == 50
    assert results["config"]["layer"] == 2


def test_missing_eval_dir_is_a_clear_error(tiny_pretrained, tmp_path, capsys):
    code = xsl_eval(["retrieval", "--checkpoint", str(tiny_pretrained), "--eval-dir", str(tmp_path / "nope"),
                     "--out", str(tmp_path / "out")])
    assert code == 2 and "evaluation directory not found" in capsys.readouterr().err
