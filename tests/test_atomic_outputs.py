"""A crashed or killed xsl-prep / xsl-eval leaves no output under its final name
(preprocess.atomic): the helpers themselves, writers that crash half-way, and a real
``xsl-prep binarize-mono`` stopped by SIGKILL while fairseq-preprocess is writing."""
import json
import os
import signal
import subprocess
import time

import numpy as np
import pytest

from conftest import BIN_DIR, REPO_ROOT
from preprocess import atomic
from preprocess.atomic import atomic_directory, atomic_paths, atomic_write


class Crash(Exception):
    pass


def entries(directory):
    return sorted(os.listdir(directory))


# ------------------------------------------------------------------ the helpers

def test_atomic_write_appears_only_when_complete(tmp_path):
    target = tmp_path / "results.json"
    with pytest.raises(Crash):
        with atomic_write(target) as out:
            out.write('{"half": ')
            assert entries(tmp_path) != [] and not target.exists()  # written under a hidden name
            raise Crash
    assert entries(tmp_path) == []  # no final file, no temporary left

    target.write_text("old, complete\n")
    with pytest.raises(Crash):
        with atomic_write(target) as out:
            out.write("new, half")
            raise Crash
    assert target.read_text() == "old, complete\n"  # an earlier version survives a crash

    with atomic_write(target) as out:
        out.write("new\n")
    with atomic_write(tmp_path / "model.bin", "wb") as out:
        out.write(b"\x00\x01")
    assert target.read_text() == "new\n" and (tmp_path / "model.bin").read_bytes() == b"\x00\x01"
    assert entries(tmp_path) == ["model.bin", "results.json"]
    assert oct(target.stat().st_mode & 0o777) == oct(0o666 & ~current_umask())  # like a plain open()


def current_umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_atomic_paths_keep_extensions_and_replace_in_order(tmp_path, monkeypatch):
    replaced = []
    real_replace = os.replace
    monkeypatch.setattr(atomic.os, "replace", lambda src, dst: (replaced.append(os.path.basename(dst)),
                                                                 real_replace(src, dst)))
    with atomic_paths(tmp_path / "train.bin", tmp_path / "train.idx", tmp_path / "t.wps.npy") as staged:
        assert [os.path.dirname(p) for p in staged] == [str(tmp_path)] * 3
        assert all(os.path.basename(p).startswith(".tmp-") for p in staged)
        np.save(staged[2], np.arange(3))  # np.save adds .npy unless the name already ends with it
        for path in staged[:2]:
            open(path, "w").close()
    assert replaced == ["train.bin", "train.idx", "t.wps.npy"]
    assert entries(tmp_path) == ["t.wps.npy", "train.bin", "train.idx"]

    with pytest.raises(Crash):
        with atomic_paths(tmp_path / "valid.bin", tmp_path / "valid.idx") as (bin_path, _):
            open(bin_path, "w").close()  # the .bin was written, the .idx never
            raise Crash
    assert entries(tmp_path) == ["t.wps.npy", "train.bin", "train.idx"]


def write_files(root, names, text):
    for name in names:
        path = os.path.join(root, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as out:
            out.write(text)
        time.sleep(0.01)  # distinct modification times: the write order is the move order


def test_atomic_directory_is_all_or_nothing(tmp_path, monkeypatch):
    destdir = tmp_path / "data-bin" / "mono"
    with pytest.raises(Crash):
        with atomic_directory(destdir) as staging:
            write_files(staging, ["train.bin"], "half")
            raise Crash
    assert entries(tmp_path / "data-bin") == []

    with atomic_directory(destdir) as staging:
        write_files(staging, ["en/train.idx", "dict.txt"], "first\n")
    assert entries(destdir) == ["dict.txt", "en"] and entries(tmp_path / "data-bin") == ["mono"]

    # into an existing directory: staged files replace theirs in the order they were written
    # (the metadata a command writes last appears last); files the run did not write stay
    (destdir / "notes.txt").write_text("mine\n")
    replaced = []
    real_replace = os.replace
    monkeypatch.setattr(atomic.os, "replace", lambda src, dst: (replaced.append(os.path.relpath(dst, destdir)),
                                                                 real_replace(src, dst)))
    with atomic_directory(destdir) as staging:
        write_files(staging, ["en/train.idx", "dict.txt"], "second\n")
    assert replaced == ["en/train.idx", "dict.txt"]
    assert (destdir / "dict.txt").read_text() == "second\n" == (destdir / "en" / "train.idx").read_text()
    assert (destdir / "notes.txt").read_text() == "mine\n"
    assert entries(tmp_path / "data-bin") == ["mono"]


# ------------------------------------------------------------------ writers that crash half-way

def test_write_sequences_that_fail_midway_leave_no_dataset(tmp_path):
    from xsl_fairseq.data.features import load_sequences, write_sequences

    def rows():
        yield [4, 5, 6]
        raise Crash

    with pytest.raises(Crash):
        write_sequences(str(tmp_path / "train.tokens"), rows())
    assert entries(tmp_path) == []
    assert write_sequences(str(tmp_path / "train.tokens"), [[4, 5], [6]]) == 2
    assert [t.tolist() for t in load_sequences(str(tmp_path / "train.tokens"))] == [[4, 5], [6]]


def test_binarize_that_fails_midway_leaves_no_data_directory(tmp_path, monkeypatch):
    from preprocess import binarize

    (tmp_path / "dict.txt").write_text("a 1\nb 1\n")
    (tmp_path / "text.txt").write_text("a b\nb a\n")
    real = binarize.run_fairseq_preprocess

    def crash_after_the_training_split(argv):
        real(argv)  # writes dict.txt, train.bin and train.idx into the (staging) destdir
        raise Crash

    monkeypatch.setattr(binarize, "run_fairseq_preprocess", crash_after_the_training_split)
    with pytest.raises(Crash):
        binarize.binarize_monolingual([str(tmp_path / "text.txt")], str(tmp_path / "dict.txt"),
                                      str(tmp_path / "mono"))
    assert entries(tmp_path) == ["dict.txt", "text.txt"]


def test_xsl_eval_report_that_fails_before_results_json_leaves_none(tmp_path, monkeypatch):
    from xsl_fairseq.evaluation import report

    summary = report.summarise([{"en": {"accuracy": 80.0, "examples": 5}, "de": {"accuracy": 70.0, "examples": 5}}],
                               ["accuracy"], "en")

    def tensorboard_fails(*args):
        raise Crash

    monkeypatch.setattr(report, "_write_tensorboard", tensorboard_fails)
    with pytest.raises(Crash):
        report.write_report(str(tmp_path), "xnli", summary, ["accuracy"], {}, 1)
    assert not (tmp_path / "results.json").exists()  # what marks a finished evaluation
    monkeypatch.undo()
    report.write_report(str(tmp_path), "xnli", summary, ["accuracy"], {}, 1)
    assert json.loads((tmp_path / "results.json").read_text())["languages"]["de"]["accuracy"]["mean"] == 70.0


# ------------------------------------------------------------------ a real command, killed

def test_sigkilled_binarize_mono_leaves_no_data_directory(tmp_path):
    words = [f"w{i}" for i in range(50)]
    (tmp_path / "dict.txt").write_text("".join(f"{w} 1\n" for w in words))
    rng = np.random.default_rng(0)
    lines = (" ".join(words[k] for k in row) for row in rng.integers(0, 50, (200_000, 12)))
    (tmp_path / "text.txt").write_text("\n".join(lines) + "\n")
    destdir = tmp_path / "mono"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen([str(BIN_DIR / "xsl-prep"), "binarize-mono", "--input", str(tmp_path / "text.txt"),
                             "--dict", str(tmp_path / "dict.txt"), "--destdir", str(destdir)],
                            cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        # SIGKILL once fairseq-preprocess has started writing the outputs (into the staging directory)
        deadline = time.time() + 120
        while time.time() < deadline and proc.poll() is None:
            staging = [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-") and p.is_dir()]
            if staging and any(staging[0].iterdir()):
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.005)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, "binarize-mono finished before it could be killed mid-write"
    assert not destdir.exists()
    leftovers = [name for name in entries(tmp_path) if name not in ("dict.txt", "text.txt")]
    assert leftovers and all(name.startswith(".tmp-") for name in leftovers)
