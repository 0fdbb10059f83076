"""xsl-eval's stored predictions, --dev model selection and `xsl-eval compare`, end to end
on tiny slices of ../shared/data with a tiny pretrained model."""
import json

import numpy as np
import pytest

from test_eval_cli import tiny_finetuning, tiny_pretrained  # noqa: F401 - the fixture is shared
from xsl_fairseq.evaluation.cli import main as xsl_eval
from xsl_fairseq.evaluation.predictions import scoring_units

pytestmark = pytest.mark.filterwarnings("ignore:.*seems not to be NE tag")


def rescored(out, lang, metric, seed="1"):
    """The metric recomputed from the files a run left beside results.json."""
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    index = results["config"]["predictions"]
    keep = results["config"].get("evaluated_entity_types", {}).get(lang) if metric == "f1_shared_types" else None
    units = scoring_units(index["format"], metric, str(out / index["per_seed"][seed][lang]),
                          str(out / index["gold"][lang]), results["config"].get("normalisation", {}).get(lang),
                          keep)
    return 100.0 * units[:, 0].sum() / units[:, 1].sum(), results


@pytest.fixture(scope="module")
def retrieval_runs(tiny_pretrained, shared_data, tmp_path_factory):  # noqa: F811
    root = tmp_path_factory.mktemp("retrieval")
    for name, extra in (("default", []), ("layer1", ["--layer", "1"])):
        assert xsl_eval(["retrieval", "--checkpoint", str(tiny_pretrained),
                         "--eval-dir", str(shared_data / "flores101"), "--split", "devtest",
                         "--languages", "deu,rus,swh", "--max-eval-examples", "120",
                         "--out", str(root / name), *extra]) == 0
    return root


def test_retrieval_predictions_rescore_to_the_reported_accuracy(retrieval_runs):
    score, results = rescored(retrieval_runs / "default", "deu", "accuracy")
    assert score == pytest.approx(results["languages"]["deu"]["accuracy"]["mean"])
    lines = (retrieval_runs / "default" / "predictions" / "seed1" / "deu.txt").read_text().split()
    assert len(lines) == 120 and all(0 <= int(line) < 120 for line in lines)
    assert results["config"]["metric_definitions"]["accuracy"].startswith("XTREME")


def test_compare_a_run_with_itself_and_with_another(retrieval_runs, tmp_path, capsys):
    default, layer1 = retrieval_runs / "default" / "results.json", retrieval_runs / "layer1" / "results.json"
    assert xsl_eval(["compare", str(default), str(default), str(layer1), "--names", "a,b,c",
                     "--out", str(tmp_path / "cmp"), "--bootstrap-samples", "200"]) == 0
    table = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    assert [run["name"] for run in table["runs"]] == ["a", "b", "c"] and table["metric"] == "accuracy"
    same, other = table["differences"]
    for column, value in same["difference"].items():
        assert value == 0.0 and same["interval"][column] == {"low": 0.0, "high": 0.0}
    for column, value in other["difference"].items():
        interval = other["interval"][column]
        assert interval["low"] <= value <= interval["high"]
    expected = np.mean([table["runs"][2]["scores"][lang] - table["runs"][0]["scores"][lang]
                        for lang in ("deu", "rus", "swh")])
    assert other["difference"]["avg (non-en)"] == pytest.approx(expected)
    assert (tmp_path / "cmp" / "compare.png").read_bytes()[:4] == b"\x89PNG"
    markdown = (tmp_path / "cmp" / "compare.md").read_text()
    assert "| c - a |" in markdown and "[" in markdown and "+0.0 [+0.0, +0.0]" in markdown
    assert "compare.png" in capsys.readouterr().out


def test_compare_refuses_bad_input(retrieval_runs, tmp_path, capsys):
    default = retrieval_runs / "default" / "results.json"
    broken = tmp_path / "broken.json"
    broken.write_text('{"evaluation": "retrieval", "languages": ')
    assert xsl_eval(["compare", str(default), str(broken), "--out", str(tmp_path / "x")]) == 2
    assert f"{broken}:1: not valid JSON" in capsys.readouterr().err
    assert xsl_eval(["compare", str(default), "--metric", "f1", "--out", str(tmp_path / "x")]) == 2
    assert "no metric 'f1'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        xsl_eval(["compare", str(default), "--bootstrap-samples", "0", "--out", str(tmp_path / "x")])


def test_dev_selects_the_best_epoch(tiny_pretrained, shared_data, tmp_path):  # noqa: F811
    xnli = shared_data / "xnli"
    # train on English items after 100, select on English items 1..60 (a copy of them:
    # --dev must not be the --train file), evaluate German items 1..24
    dev = tmp_path / "dev-en.tsv"
    dev.write_text("".join((xnli / "dev-en.tsv").read_text(encoding="utf-8").splitlines(True)[:60]),
                   encoding="utf-8")
    args = tiny_finetuning(tmp_path, xnli / "dev-en.tsv", "--held-out-items", "100", "--dev", dev,
                           "--epochs", "2", "--lr", "1e-4")
    assert xsl_eval(["sentence-pair", "--checkpoint", str(tiny_pretrained), "--eval-dir", str(xnli),
                     "--languages", "de", *map(str, args)]) == 0
    out = tmp_path / "out"
    score, results = rescored(out, "de", "accuracy")
    selection = results["config"]["model_selection"]["1"]
    assert set(selection["dev_scores"]) == {"1", "2"} and selection["metric"] == "accuracy"
    assert selection["dev_scores"][str(selection["best_epoch"])] == max(selection["dev_scores"].values())
    assert score == pytest.approx(results["languages"]["de"]["accuracy"]["mean"])
    labels = (out / "predictions" / "seed1" / "de.tsv").read_text().split()
    assert len(labels) == 24 and set(labels) <= {"contradiction", "entailment", "neutral"}
    assert not list((out / "work" / "checkpoints_seed1").glob("checkpoint[0-9].pt"))[1:]  # only the winner kept


def test_dev_must_not_be_the_training_file(tiny_pretrained, shared_data, tmp_path, capsys):  # noqa: F811
    train = shared_data / "xnli" / "dev-en.tsv"
    with pytest.raises(SystemExit):
        xsl_eval(["sentence-pair", "--checkpoint", str(tiny_pretrained), "--eval-dir", str(shared_data / "xnli"),
                  *map(str, tiny_finetuning(tmp_path, train, "--dev", train))])
    assert "is the --train file" in capsys.readouterr().err


def test_dev_must_hold_examples(tiny_pretrained, shared_data, tmp_path, capsys):  # noqa: F811
    empty = tmp_path / "empty.conllu"
    empty.write_text("", encoding="utf-8")
    ud = shared_data / "ud"
    code = xsl_eval(["pos", "--checkpoint", str(tiny_pretrained), "--eval-dir", str(ud), "--languages", "de",
                     *map(str, tiny_finetuning(tmp_path, next(ud.rglob("en_ewt-ud-train.conllu")), "--dev", empty))])
    assert code == 2 and f"{empty}: no sentences" in capsys.readouterr().err


def test_pos_and_ner_report_xtreme_f1_and_rescore(tiny_pretrained, shared_data, tmp_path):  # noqa: F811
    ud = shared_data / "ud"
    assert xsl_eval(["pos", "--checkpoint", str(tiny_pretrained), "--eval-dir", str(ud), "--languages", "de",
                     *map(str, tiny_finetuning(tmp_path, next(ud.rglob("en_ewt-ud-train.conllu"))))]) == 0
    for metric in ("f1", "accuracy"):
        score, results = rescored(tmp_path / "out", "de", metric)
        assert score == pytest.approx(results["languages"]["de"][metric]["mean"])
    ner_out = tmp_path / "ner"
    train = next((shared_data / "uner").rglob("*-ud-dev.iob2"))
    args = tiny_finetuning(tmp_path, train, "--lr", "1e-3")
    args[args.index("--out") + 1] = ner_out
    assert xsl_eval(["ner", "--checkpoint", str(tiny_pretrained), "--eval-dir",
                     str(shared_data / "masakhaner" / "v1"), "--languages", "swa", *map(str, args)]) == 0
    for metric in ("f1", "f1_shared_types"):
        score, results = rescored(ner_out, "swa", metric)
        assert score == pytest.approx(results["languages"]["swa"][metric]["mean"])
    tags = (ner_out / "gold" / "swa.tsv").read_text().split("\n\n")
    assert len([block for block in tags if block.strip()]) == 24


def test_qa_predictions_are_squad_json(tiny_pretrained, shared_data, tmp_path):  # noqa: F811
    mlqa = shared_data / "mlqa" / "dev"
    assert xsl_eval(["qa", "--checkpoint", str(tiny_pretrained), "--eval-dir", str(mlqa), "--languages", "de",
                     "--max-seq-length", "64", "--max-query-length", "20", "--doc-stride", "24",
                     *map(str, tiny_finetuning(tmp_path, mlqa / "dev-context-en-question-en.json"))]) == 0
    out = tmp_path / "out"
    predictions = json.loads((out / "predictions" / "seed1" / "de.json").read_text(encoding="utf-8"))
    assert len(predictions) == 24 and all(isinstance(text, str) for text in predictions.values())
    for metric in ("f1", "exact_match"):
        score, results = rescored(out, "de", metric)
        assert score == pytest.approx(results["languages"]["de"][metric]["mean"])
