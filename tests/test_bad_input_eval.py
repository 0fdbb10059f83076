"""Bad input to ``xsl-eval`` and to ``fairseq-train --user-dir xsl_fairseq`` fails fast and clearly.

Every case runs the real entry point (``xsl-eval``'s ``main(argv)`` in-process; for
``fairseq-train``, fairseq's own parsing, task setup and model / criterion building, which
is everything ``fairseq_cli.train.main`` does before it reads data or a checkpoint) and
checks the exit code, that the one-line message names the file (and line) or option at
fault, and that no traceback is printed. One case runs the installed ``fairseq-train``
itself, to show the plugin's excepthook turning an InputError into that one line.
Input is synthetic and tiny: a sentencepiece model of 300 lines and a 2-layer model that
is built, never trained.
"""
import json
import sys
from pathlib import Path

import pytest
import torch

from conftest import REPO_ROOT, run_tool
from preprocess import InputError
from xsl_fairseq.evaluation.cli import main as xsl_eval

WORDS = ("house river stone light garden window paper music market winter city friend water "
         "mountain street table letter morning evening yellow green quick slow happy").split()


def _sentences(count, offset=0):
    return [" ".join(WORDS[(i * 7 + j * 3 + offset) % len(WORDS)] for j in range(4 + i % 5)) for i in range(count)]


def build_tiny_model(root: Path) -> Path:
    """``root/model/{checkpoint.pt, dict.txt, spm.model}``: a 2-layer xsl_roberta_tiny saved
    as fairseq saves it (weights random: only the files' shapes and configuration matter)."""
    from fairseq import options, tasks
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf
    from omegaconf import OmegaConf

    from preprocess.spm import train_sentencepiece

    model_dir = root / "model"
    model_dir.mkdir(parents=True)
    text = root / "text.txt"
    text.write_text("\n".join(_sentences(300)) + "\n", encoding="utf-8")
    train_sentencepiece([str(text)], str(model_dir / "spm"), vocab_size=40)
    args = options.parse_args_and_arch(options.get_training_parser(), [
        str(model_dir), "--user-dir", str(REPO_ROOT / "xsl_fairseq"), "--task", "xsl_masked_lm",
        "--criterion", "xsl_masked_lm", "--arch", "xsl_roberta_tiny", "--tokens-per-sample", "64", "--cpu",
        "--save-dir", str(root / "unused")])
    cfg = convert_namespace_to_omegaconf(args)
    model = tasks.setup_task(cfg.task).build_model(cfg.model)
    torch.save({"cfg": OmegaConf.to_container(cfg, resolve=True, enum_to_str=True), "args": None,
                "model": model.state_dict(), "extra_state": {}, "task_state": {}, "last_optimizer_state": None,
                "optimizer_history": [{"criterion_name": "XslMaskedLmLoss", "optimizer_name": "none",
                                       "lr_scheduler_state": {}, "num_updates": 0}]},
               model_dir / "checkpoint.pt")
    return model_dir


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("bad-input"))


# ------------------------------------------------------------------ xsl-eval


def run_xsl_eval(argv, capsys):
    """``(exit code, stderr)`` of xsl-eval; parse errors exit through SystemExit."""
    try:
        code = xsl_eval([str(a) for a in argv])
    except SystemExit as exit_:
        code = exit_.code
    err = capsys.readouterr().err
    return code, err


def assert_clear(code, err, *named, expected_code=2):
    assert code == expected_code, err
    assert "Traceback" not in err, err
    message = [line for line in err.splitlines() if "error:" in line]
    assert len(message) == 1, err
    for part in named:
        assert str(part) in message[0], (part, err)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def xnli_dir(root: Path) -> Path:
    """dev-en.tsv and dev-de.tsv with the three XNLI labels."""
    labels = ("entailment", "neutral", "contradiction")
    for lang in ("en", "de"):
        write(root / "xnli" / f"dev-{lang}.tsv",
              "".join(f"{a}\t{b}\t{labels[i % 3]}\n" for i, (a, b) in
                      enumerate(zip(_sentences(12), _sentences(12, offset=5)))))
    return root / "xnli"


def pair_args(tiny, eval_dir, train, *extra):
    return ["sentence-pair", "--checkpoint", tiny / "checkpoint.pt", "--eval-dir", eval_dir, "--train", train,
            "--out", eval_dir.parent / "out", *extra]


SQUAD_CONTEXT = ("the river runs past the old stone house near the market and then on through the fields "
                 "and the forest for many miles until it reaches the sea")


def squad(path: Path, answer="stone house", start=None, qid="q1") -> Path:
    start = SQUAD_CONTEXT.index(answer) if start is None else start
    data = {"data": [{"title": "t", "paragraphs": [{"context": SQUAD_CONTEXT, "qas": [
        {"id": qid, "question": "what is near the market", "answers": [{"text": answer, "answer_start": start}]}]}]}]}
    return write(path, json.dumps(data))


def qa_args(tiny, tmp_path, train, *extra):
    eval_dir = tmp_path / "mlqa"
    squad(eval_dir / "dev-context-de-question-de.json")
    return ["qa", "--checkpoint", tiny / "checkpoint.pt", "--eval-dir", eval_dir, "--train", train,
            "--out", tmp_path / "out", *extra]


def tagging_args(command, tiny, eval_dir, train, tmp_path, *extra):
    return [command, "--checkpoint", tiny / "checkpoint.pt", "--eval-dir", eval_dir, "--train", train,
            "--out", tmp_path / "out", *extra]


CONLLU_LINE = "1\thouse\thouse\tNOUN\t_\t_\t0\troot\t_\t_\n"

# (id, sub-command options after the common ones, text the message must contain)
PARSE_TIME_CASES = [
    ("qa-doc-stride-0", ["qa", "--doc-stride", "0"], "--doc-stride: 0: must be >= 1"),
    ("qa-max-query-length-0", ["qa", "--max-query-length", "0"], "--max-query-length: 0: must be >= 1"),
    ("qa-max-answer-length-0", ["qa", "--max-answer-length", "0"], "--max-answer-length: 0: must be >= 1"),
    ("qa-query-fills-window", ["qa", "--max-seq-length", "64", "--max-query-length", "70", "--doc-stride", "1"],
     "--max-seq-length 64 leaves no room for the passage"),
    ("seeds-not-integer", ["sentence-pair", "--seeds", "1,x"], "'x' in '1,x': seeds are non-negative integers"),
    ("seeds-repeated", ["sentence-pair", "--seeds", "1,2,1"], "a seed is repeated"),
    ("batch-size-0", ["sentence-pair", "--batch-size", "0"], "--batch-size: 0: must be >= 1"),
    ("update-freq-0", ["ner", "--update-freq", "0"], "--update-freq: 0: must be >= 1"),
    ("epochs-0", ["pos", "--epochs", "0"], "--epochs: 0: must be >= 1"),
    ("lr-0", ["sentence-pair", "--lr", "0"], "--lr: 0: must be > 0"),
    ("warmup-ratio-1.5", ["sentence-pair", "--warmup-ratio", "1.5"], "--warmup-ratio: 1.5: must be >= 0 and < 1"),
    ("weight-decay-negative", ["qa", "--weight-decay", "-0.1"], "--weight-decay: -0.1: must be >= 0"),
    ("max-train-examples-negative", ["sentence-pair", "--max-train-examples", "-1"],
     "--max-train-examples: -1: must be >= 1"),
    ("max-eval-examples-0", ["retrieval", "--max-eval-examples", "0"], "--max-eval-examples: 0: must be >= 1"),
    ("held-out-items-negative", ["sentence-pair", "--held-out-items", "-5"], "--held-out-items: -5: must be >= 0"),
    ("max-seq-length-3", ["sentence-pair", "--max-seq-length", "3"], "--max-seq-length: 3: must be >= 8"),
    ("few-shot-negative", ["qa", "--few-shot", "-2"], "--few-shot: -2: must be >= 0"),
    ("batch-size-not-a-number", ["pos", "--batch-size", "many"], "--batch-size: invalid int >= 1 value: 'many'"),
]


@pytest.mark.parametrize("argv, message", [c[1:] for c in PARSE_TIME_CASES], ids=[c[0] for c in PARSE_TIME_CASES])
def test_numeric_options_are_checked_at_parse_time(argv, message, tmp_path, capsys):
    # nothing here exists: a parse error must come before any file is read
    command, options = argv[0], argv[1:]
    common = ["--checkpoint", tmp_path / "none.pt", "--eval-dir", tmp_path, "--out", tmp_path / "out"]
    if command != "retrieval":
        common += ["--train", tmp_path / "none.json"]
    code, err = run_xsl_eval([command, *common, *options], capsys)
    assert_clear(code, err, message)


def test_qa_stride_longer_than_a_window_skips_no_piece_and_is_logged(tiny, tmp_path, caplog):
    from xsl_fairseq.evaluation.cli import build_parser
    from xsl_fairseq.evaluation.pretrained import PretrainedModel, TextEncoder
    from xsl_fairseq.evaluation.qa import QAEvaluation
    from xsl_fairseq.evaluation.readers import read_squad_json

    train = squad(tmp_path / "train.json")
    args = build_parser().parse_args([str(a) for a in qa_args(
        tiny, tmp_path, train, "--max-seq-length", "24", "--max-query-length", "8", "--doc-stride", "100")])
    pretrained = PretrainedModel.resolve(args.checkpoint)
    evaluation = QAEvaluation(args, pretrained, TextEncoder(pretrained.spm_path, pretrained.dictionary()),
                              str(tmp_path / "work"))
    example = read_squad_json(train)[0]
    windows = evaluation.windows(example, with_answer=False)
    _, all_pieces = evaluation.text_encoder.encode_with_offsets(example.context)
    assert len(windows) > 1 and {span for w in windows for span in w["char_spans"]} == set(all_pieces)
    evaluation.prepare()
    assert "their windows hold fewer than --doc-stride 100 passage pieces" in caplog.text


def test_retrieval_layer_beyond_the_model(tiny, tmp_path, capsys):
    flores = tmp_path / "flores"
    for name in ("eng", "deu"):
        write(flores / f"{name}.devtest", "\n".join(_sentences(5)) + "\n")
    code, err = run_xsl_eval(["retrieval", "--checkpoint", tiny / "checkpoint.pt", "--eval-dir", flores,
                              "--split", "devtest", "--layer", "9", "--out", tmp_path / "out"], capsys)
    assert_clear(code, err, "--layer 9", tiny / "checkpoint.pt", "hidden states 0..2")


# -- checkpoints ------------------------------------------------------------


def truncated(tiny, path):
    path.write_bytes((tiny / "checkpoint.pt").read_bytes()[:2000])


def not_torch(tiny, path):
    path.write_text("this is a README, not a model\n")


def empty(tiny, path):
    path.write_bytes(b"")


def foreign_pickle(tiny, path):
    torch.save({"weights": torch.zeros(3)}, path)  # someone else's torch file


def no_configuration(tiny, path):
    state = torch.load(tiny / "checkpoint.pt", weights_only=False)
    torch.save({"model": state["model"]}, path)


def translation_model(tiny, path):
    state = torch.load(tiny / "checkpoint.pt", weights_only=False)
    state["cfg"]["model"] = {"_name": "transformer", "arch": "transformer"}  # an encoder-decoder's tensor names
    state["model"] = {"encoder.embed_tokens.weight": torch.zeros(40, 8), "decoder.embed_tokens.weight": torch.zeros(40, 8)}
    torch.save(state, path)


CHECKPOINT_CASES = [
    ("checkpoint-missing", None, "checkpoint not found"),
    ("checkpoint-truncated", truncated, "cannot read the checkpoint (truncated or damaged"),
    ("checkpoint-not-a-torch-file", not_torch, "not a torch checkpoint"),
    ("checkpoint-empty", empty, "empty file"),
    ("checkpoint-foreign-pickle", foreign_pickle, "not a fairseq checkpoint (no 'model' state dict"),
    ("checkpoint-without-configuration", no_configuration, "no 'cfg' or 'args' entry"),
    ("checkpoint-wrong-architecture", translation_model, "arch 'transformer' is not a RoBERTa-family encoder"),
]


@pytest.mark.parametrize("make, message", [c[1:] for c in CHECKPOINT_CASES], ids=[c[0] for c in CHECKPOINT_CASES])
def test_bad_checkpoint_is_named_before_data_preparation(make, message, tiny, tmp_path, capsys):
    bad = tmp_path / "model.pt"
    if make:
        make(tiny, bad)
    eval_dir = xnli_dir(tmp_path)
    code, err = run_xsl_eval(pair_args(tiny, eval_dir, eval_dir / "dev-en.tsv", "--dict", tiny / "dict.txt",
                                       "--spm", tiny / "spm.model", "--checkpoint", bad), capsys)
    assert_clear(code, err, bad, message)
    assert not (tmp_path / "out" / "work" / "data").exists()  # refused before data preparation


def test_dictionary_smaller_than_the_checkpoint(tiny, tmp_path, capsys):
    lines = (tiny / "dict.txt").read_text(encoding="utf-8").splitlines(keepends=True)
    small = write(tmp_path / "dict.txt", "".join(lines[:-5]))
    eval_dir = xnli_dir(tmp_path)
    code, err = run_xsl_eval(pair_args(tiny, eval_dir, eval_dir / "dev-en.tsv", "--dict", small), capsys)
    assert_clear(code, err, tiny / "checkpoint.pt", small, "not the dictionary of this checkpoint")


def test_malformed_dictionary_line(tiny, tmp_path, capsys):
    lines = (tiny / "dict.txt").read_text(encoding="utf-8").splitlines(keepends=True)
    bad = write(tmp_path / "dict.txt", "".join(lines[:3] + ["piece-without-count\n"] + lines[4:]))
    eval_dir = xnli_dir(tmp_path)
    code, err = run_xsl_eval(pair_args(tiny, eval_dir, eval_dir / "dev-en.tsv", "--dict", bad), capsys)
    assert_clear(code, err, f"{bad}:4: expected '<token> <count>'")


def test_sentencepiece_model_that_is_not_one(tiny, tmp_path, capsys):
    bad = write(tmp_path / "spm.model", "not a sentencepiece model")
    eval_dir = xnli_dir(tmp_path)
    code, err = run_xsl_eval(pair_args(tiny, eval_dir, eval_dir / "dev-en.tsv", "--spm", bad), capsys)
    assert_clear(code, err, bad, "not a sentencepiece model")


# -- data files -------------------------------------------------------------


def test_stray_training_label_is_an_error_not_a_fourth_class(tiny, tmp_path, capsys):
    eval_dir = xnli_dir(tmp_path)
    lines = (eval_dir / "dev-en.tsv").read_text(encoding="utf-8").splitlines(keepends=True)
    lines[2] = lines[2].rsplit("\t", 1)[0] + "\tentailmnet\n"
    train = write(tmp_path / "train-en.tsv", "".join(lines))
    code, err = run_xsl_eval(pair_args(tiny, eval_dir, train), capsys)
    assert_clear(code, err, f"{train}:3: label 'entailmnet' is not among the labels of the evaluation data")


@pytest.mark.parametrize("line, message", [
    ("only one field\n", ":2: expected 3 tab-separated fields"),
    ("a\tb\t \n", ":2: empty label"),
    ("\tb\tneutral\n", ":2: empty text_a"),
], ids=["tsv-wrong-column-count", "tsv-empty-label", "tsv-empty-text"])
def test_malformed_sentence_pair_tsv(line, message, tiny, tmp_path, capsys):
    eval_dir = xnli_dir(tmp_path)
    train = write(tmp_path / "train.tsv", "x\ty\tneutral\n" + line)
    code, err = run_xsl_eval(pair_args(tiny, eval_dir, train), capsys)
    assert_clear(code, err, f"{train}{message}")


def test_squad_that_is_not_json(tiny, tmp_path, capsys):
    train = write(tmp_path / "train.json", '{"data": [\n  {"title": oops}\n]}')
    code, err = run_xsl_eval(qa_args(tiny, tmp_path, train), capsys)
    assert_clear(code, err, f"{train}:2: not valid JSON")


def test_squad_question_without_text(tiny, tmp_path, capsys):
    train = squad(tmp_path / "train.json")
    data = json.loads(train.read_text())
    del data["data"][0]["paragraphs"][0]["qas"][0]["question"]
    train.write_text(json.dumps(data))
    code, err = run_xsl_eval(qa_args(tiny, tmp_path, train), capsys)
    assert_clear(code, err, f"{train}:data[0].paragraphs[0].qas[0]: missing or invalid 'question'")


def test_squad_answers_not_at_their_offsets_are_not_trained_on(tiny, tmp_path, capsys):
    # "the sea" is more than 64 characters from offset 0: the question is dropped, and nothing is left
    train = squad(tmp_path / "train.json", answer="the sea", start=0)
    code, err = run_xsl_eval(qa_args(tiny, tmp_path, train), capsys)
    assert_clear(code, err, train, "none of its 1 training questions has an answer_start",
                 "data[0].paragraphs[0].qas[0]")


def test_squad_offsets_fixed_nearby_dropped_otherwise_and_logged(tmp_path, caplog):
    from xsl_fairseq.evaluation.readers import read_squad_json, repair_answer_offsets

    right = SQUAD_CONTEXT.index("stone house")
    near, far = squad(tmp_path / "near.json", start=right - 3), squad(tmp_path / "far.json", answer="the sea", start=0)
    assert SQUAD_CONTEXT.index("the sea") > 64  # out of reach of the repair
    (kept, fixed, _), (none, _, dropped) = (repair_answer_offsets(read_squad_json(p), p) for p in (near, far))
    assert [ex.answer_starts[0] for ex in kept] == [right] and fixed == [f"{near}:data[0].paragraphs[0].qas[0]"]
    assert none == [] and dropped == [f"{far}:data[0].paragraphs[0].qas[0]"]


def test_conllu_word_line_with_wrong_column_count(tiny, tmp_path, capsys):
    ud = tmp_path / "ud"
    write(ud / "de_gsd-ud-dev.conllu", CONLLU_LINE + "\n")
    train = write(tmp_path / "en_ewt-ud-train.conllu", CONLLU_LINE + "2\tstone\tNOUN\n\n")
    code, err = run_xsl_eval(tagging_args("pos", tiny, ud, train, tmp_path), capsys)
    assert_clear(code, err, f"{train}:2: a CoNLL-U word line has 10 tab-separated columns, found 3")


def test_conllu_word_id_that_is_not_a_number(tiny, tmp_path, capsys):
    ud = tmp_path / "ud"
    write(ud / "de_gsd-ud-dev.conllu", CONLLU_LINE + "\n")
    train = write(tmp_path / "en_ewt-ud-train.conllu", CONLLU_LINE.replace("1\t", "one\t", 1) + "\n")
    code, err = run_xsl_eval(tagging_args("pos", tiny, ud, train, tmp_path), capsys)
    assert_clear(code, err, f"{train}:1: word id 'one' is not a number")


def test_xtreme_pos_tsv_without_tag(tiny, tmp_path, capsys):
    pos = tmp_path / "udpos"
    write(pos / "dev-de.tsv", "Haus\tNOUN\n\n")
    train = write(tmp_path / "train-en.tsv", "house\tNOUN\nstone\n\n")
    code, err = run_xsl_eval(tagging_args("pos", tiny, pos, train, tmp_path), capsys)
    assert_clear(code, err, f"{train}:2: expected token<TAB>UPOS")


def test_iob2_tag_that_is_not_iob2(tiny, tmp_path, capsys):
    ner = tmp_path / "masakhaner"
    write(ner / "swa" / "dev.txt", "Nairobi B-LOC\n\n")
    train = write(tmp_path / "train.txt", "Paris B-LOC\nis O\nbig B_ADJ\n\n")
    code, err = run_xsl_eval(tagging_args("ner", tiny, ner, train, tmp_path), capsys)
    assert_clear(code, err, f"{train}:3: tag 'B_ADJ' is not O, B-TYPE or I-TYPE")


def test_iob2_entity_starting_with_i_is_repaired_in_training_data_and_logged(tmp_path, caplog):
    from xsl_fairseq.evaluation.readers import read_iob2

    path = write(tmp_path / "train.txt", "in O\nNew I-LOC\nYork I-LOC\nsaw O\nAda I-PER\n\n")
    assert read_iob2(path, repair_entity_starts=True)[0][1] == ["O", "B-LOC", "I-LOC", "O", "B-PER"]
    assert f"{path}: 2 entities start with I- instead of B- (first: {path}:2); rewritten to B-" in caplog.text
    assert read_iob2(path)[0][1] == ["O", "I-LOC", "I-LOC", "O", "I-PER"]  # evaluation files: as scored


def test_retrieval_files_of_different_length(tiny, tmp_path, capsys):
    flores = tmp_path / "flores"
    write(flores / "eng.devtest", "\n".join(_sentences(5)) + "\n")
    deu = write(flores / "deu.devtest", "\n".join(_sentences(4)) + "\n")
    code, err = run_xsl_eval(["retrieval", "--checkpoint", tiny / "checkpoint.pt", "--eval-dir", flores,
                              "--split", "devtest", "--out", tmp_path / "out"], capsys)
    assert_clear(code, err, f"{flores / 'eng.devtest'}:5: line has no counterpart", deu)


def test_no_file_for_any_requested_language(tiny, tmp_path, capsys):
    eval_dir = xnli_dir(tmp_path)
    code, err = run_xsl_eval(pair_args(tiny, eval_dir, eval_dir / "dev-en.tsv", "--languages", "xx,yy"), capsys)
    assert_clear(code, err, eval_dir, "no dev file for any requested language")


def test_training_file_missing(tiny, tmp_path, capsys):
    eval_dir = xnli_dir(tmp_path)
    code, err = run_xsl_eval(pair_args(tiny, eval_dir, tmp_path / "trian.tsv"), capsys)
    assert_clear(code, err, f"{tmp_path / 'trian.tsv'}: --train file not found")


def test_evaluation_directory_missing(tiny, tmp_path, capsys):
    eval_dir = xnli_dir(tmp_path)
    code, err = run_xsl_eval(pair_args(tiny, tmp_path / "xlni", eval_dir / "dev-en.tsv"), capsys)
    assert_clear(code, err, f"{tmp_path / 'xlni'}: evaluation directory not found")


# ------------------------------------------------------------------ fairseq-train --user-dir xsl_fairseq


def fairseq_train_until_data(argv, capsys):
    """``(exit code, stderr)`` of what fairseq-train does before it reads data or a checkpoint
    (parse, task setup, model and criterion), an uncaught InputError reported by the
    excepthook the plugin installs, as the real ``fairseq-train`` process would."""
    from fairseq import options, tasks
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf

    try:
        args = options.parse_args_and_arch(options.get_training_parser(), [str(a) for a in argv])
        cfg = convert_namespace_to_omegaconf(args)
        task = tasks.setup_task(cfg.task)
        task.build_model(cfg.model)
        task.build_criterion(cfg.criterion)
        code = 0
    except InputError as err:
        sys.excepthook(type(err), err, err.__traceback__)
        code = 1
    return code, capsys.readouterr().err


def train_args(data, task, criterion, tmp_path, *extra):
    return [data, "--user-dir", REPO_ROOT / "xsl_fairseq", "--task", task, "--criterion", criterion,
            "--arch", "xsl_roberta_tiny", "--cpu", "--save-dir", tmp_path / "save", "--optimizer", "adam",
            "--lr", "1e-4", "--batch-size", "2", *extra]


def mlm_args(tiny, tmp_path, *extra):
    return train_args(tiny, "xsl_masked_lm", "xsl_masked_lm", tmp_path, "--tokens-per-sample", "64", *extra)


def test_fairseq_train_truncated_finetune_from_model_is_one_line(tiny, tmp_path):
    bad = tmp_path / "model.pt"
    truncated(tiny, bad)
    proc = run_tool("fairseq-train", *mlm_args(tiny, tmp_path, "--finetune-from-model", bad), check=False)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert proc.stderr.strip().splitlines()[-1].startswith(f"error: {bad}: cannot read the checkpoint"), proc.stderr


def save_dir_with_truncated_last(tiny, tmp_path):
    (tmp_path / "save").mkdir()
    truncated(tiny, tmp_path / "save" / "checkpoint_last.pt")
    return tmp_path / "save" / "checkpoint_last.pt"


def the_tiny_checkpoint(tiny, tmp_path):
    return tiny / "checkpoint.pt"


FAIRSEQ_CHECKPOINT_CASES = [
    ("finetune-from-foreign-file", lambda tiny, tmp: (foreign_pickle(tiny, tmp / "m.pt"), tmp / "m.pt")[1],
     ["--finetune-from-model", "{path}"], "not a fairseq checkpoint"),
    ("finetune-from-checkpoint-without-cfg", lambda tiny, tmp: (no_configuration(tiny, tmp / "m.pt"), tmp / "m.pt")[1],
     ["--finetune-from-model", "{path}"], "no 'cfg' or 'args' entry"),
    ("restore-file-missing", lambda tiny, tmp: tmp / "chekpoint_best.pt",
     ["--restore-file", "{path}"], "checkpoint not found (fairseq would silently train from scratch)"),
    ("resume-from-truncated-checkpoint-last", save_dir_with_truncated_last, [], "cannot read the checkpoint"),
    ("finetune-from-other-layer-count", the_tiny_checkpoint,
     ["--finetune-from-model", "{path}", "--encoder-layers", "3"], "2 Transformer layers"),
    ("finetune-from-other-width", the_tiny_checkpoint,
     ["--finetune-from-model", "{path}", "--encoder-ffn-embed-dim", "256"], "has shape (512, 128)"),
]


@pytest.mark.parametrize("make, options, message", [c[1:] for c in FAIRSEQ_CHECKPOINT_CASES],
                         ids=[c[0] for c in FAIRSEQ_CHECKPOINT_CASES])
def test_fairseq_train_start_checkpoint_is_checked_against_the_model(make, options, message, tiny, tmp_path, capsys):
    path = make(tiny, tmp_path)
    code, err = fairseq_train_until_data(mlm_args(tiny, tmp_path, *[o.format(path=path) for o in options]), capsys)
    assert_clear(code, err, path, message, expected_code=1)


def test_fairseq_train_checkpoint_of_a_larger_dictionary(tiny, tmp_path, capsys):
    data = tmp_path / "data"
    lines = (tiny / "dict.txt").read_text(encoding="utf-8").splitlines(keepends=True)
    write(data / "dict.txt", "".join(lines[:-5]))
    code, err = fairseq_train_until_data(
        mlm_args(data, tmp_path, "--finetune-from-model", tiny / "checkpoint.pt"), capsys)
    assert_clear(code, err, tiny / "checkpoint.pt", data / "dict.txt", "not the dictionary of this checkpoint",
                 expected_code=1)


TASK_OPTION_CASES = [
    ("mask-prob-1.5", "xsl_masked_lm", "xsl_masked_lm", ["--mask-prob", "1.5"], "--mask-prob 1.5: must be a probability"),
    ("mask-prob-0-for-mlm", "xsl_masked_lm", "xsl_masked_lm", ["--mask-prob", "0"], "--mask-prob 0.0: must be in (0, 1)"),
    ("random-plus-unmasked-over-1", "xsl_mlctl", "xsl_mlctl",
     ["--leave-unmasked-prob", "0.6", "--random-token-prob", "0.6"], "their sum must be at most 1"),
    ("tokens-per-sample-0", "xsl_mlctl", "xsl_mlctl", ["--tokens-per-sample", "0"], "--tokens-per-sample 0: must be at least 1"),
    ("contrastive-temperature-negative", "xsl_mlctl", "xsl_mlctl", ["--contrastive-temperature", "-0.1"],
     "--contrastive-temperature -0.1: must be positive"),
    ("cacr-temperature-0", "xsl_clism", "xsl_clism", ["--cacr-temperature", "0"], "--cacr-temperature 0.0: must be positive"),
    ("head-dropout-2", "xsl_token_labeling", "xsl_token_labeling", ["--head-dropout", "2"], "--head-dropout 2.0"),
]


@pytest.mark.parametrize("task, criterion, options, message", [c[1:] for c in TASK_OPTION_CASES],
                         ids=[c[0] for c in TASK_OPTION_CASES])
def test_fairseq_train_task_options_are_checked_before_data(task, criterion, options, message, tiny, tmp_path, capsys):
    data = tmp_path / "data"
    write(data / "dict.txt", (tiny / "dict.txt").read_text(encoding="utf-8"))
    write(data / "labels.txt", "O\nB-PER\n")
    code, err = fairseq_train_until_data(train_args(data, task, criterion, tmp_path, *options), capsys)
    assert_clear(code, err, message, expected_code=1)


@pytest.mark.parametrize("task, criterion, remove, message", [
    ("xsl_masked_lm", "xsl_masked_lm", "data", "data directory not found"),
    ("xsl_token_labeling", "xsl_token_labeling", "labels.txt", "labels.txt: label list not found"),
    ("xsl_span_qa", "xsl_span_qa", "dict.txt", "dict.txt: dictionary not found"),
], ids=["mlm-data-dir-missing", "token-labeling-labels-missing", "span-qa-dict-missing"])
def test_fairseq_train_missing_data_files(task, criterion, remove, message, tiny, tmp_path, capsys):
    data = tmp_path / "data"
    write(data / "dict.txt", (tiny / "dict.txt").read_text(encoding="utf-8"))
    write(data / "labels.txt", "O\nB-PER\n")
    if remove == "data":
        data = tmp_path / "dta"
    else:
        (data / remove).unlink()
    code, err = fairseq_train_until_data(train_args(data, task, criterion, tmp_path), capsys)
    assert_clear(code, err, data, message, expected_code=1)


def test_fairseq_train_malformed_dictionary_line(tiny, tmp_path, capsys):
    data = tmp_path / "data"
    lines = (tiny / "dict.txt").read_text(encoding="utf-8").splitlines(keepends=True)
    write(data / "dict.txt", "".join(lines[:6] + [lines[2]] + lines[6:]))  # line 7 repeats line 3
    code, err = fairseq_train_until_data(train_args(data, "xsl_span_qa", "xsl_span_qa", tmp_path), capsys)
    assert_clear(code, err, f"{data / 'dict.txt'}:7: {lines[2].split()[0]!r} is already on line 3", expected_code=1)


@pytest.mark.parametrize("task", ["xsl_token_labeling", "xsl_span_qa"])
def test_fairseq_train_feature_task_without_max_positions(task, tiny, tmp_path, capsys):
    data = tmp_path / "data"
    write(data / "dict.txt", (tiny / "dict.txt").read_text(encoding="utf-8"))
    write(data / "labels.txt", "O\nB-PER\n")
    code, err = fairseq_train_until_data(train_args(data, task, task, tmp_path), capsys)
    assert_clear(code, err, f"--task {task}: give --max-positions", expected_code=1)
