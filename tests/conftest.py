"""Shared fixtures: paths to the real data slices and the installed command-line tools."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("XSL_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))
BIN_DIR = Path(sys.executable).parent


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not (SHARED_DATA / "ntrex").is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA


def run_tool(tool: str, *args, cwd=None, check=True) -> subprocess.CompletedProcess:
    """Run an installed console script (fairseq-train, xsl-prep, ...) of this venv."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    proc = subprocess.run(
        [str(BIN_DIR / tool), *map(str, args)],
        cwd=cwd or REPO_ROOT, env=env, capture_output=True, text=True,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{tool} exited {proc.returncode}\n--- stdout ---\n{proc.stdout[-4000:]}"
            f"\n--- stderr ---\n{proc.stderr[-4000:]}"
        )
    return proc


def head(path: Path, n: int, out: Path) -> Path:
    """First ``n`` lines of ``path`` written to ``out`` (a real-data slice)."""
    with open(path, encoding="utf-8") as src, open(out, "w", encoding="utf-8") as dst:
        for i, line in enumerate(src):
            if i >= n:
                break
            dst.write(line)
    return out


@pytest.fixture(scope="session")
def tiny_corpus(shared_data, tmp_path_factory) -> dict:
    """300-line slices of English, German and Russian NTREX text (line-aligned)."""
    out = tmp_path_factory.mktemp("corpus")
    names = {"en": "newstest2019-src.eng.txt", "de": "newstest2019-ref.deu.txt",
             "ru": "newstest2019-ref.rus.txt"}
    return {lang: head(shared_data / "ntrex" / name, 300, out / f"text.{lang}")
            for lang, name in names.items()}


@pytest.fixture(scope="session")
def tiny_data_bin(tiny_corpus, tmp_path_factory) -> Path:
    """data-bin/ with a joint sentencepiece model and binarized mono and en-de data."""
    from preprocess.binarize import binarize_monolingual, binarize_parallel
    from preprocess.spm import train_sentencepiece

    root = tmp_path_factory.mktemp("data-bin")
    texts = [str(p) for p in tiny_corpus.values()]
    train_sentencepiece(texts, str(root / "spm"), vocab_size=800)
    binarize_monolingual(texts, str(root / "dict.txt"), str(root / "mono"),
                         spm_model=str(root / "spm.model"), valid_lines=60)
    binarize_parallel("en", "de", [(str(tiny_corpus["en"]), str(tiny_corpus["de"]))],
                      str(root / "dict.txt"), str(root / "para" / "en-de"),
                      spm_model=str(root / "spm.model"), valid_lines=30)
    return root


# ------------------------------------------------------------------ tiny data builders used by several test files


def build_trelm_aligned(tiny_corpus: dict, tiny_data_bin: Path, out: Path) -> dict:
    """Word-aligned en-de pairs (eflomal) of the tiny corpus in ``out`` (xsl_trelm_cdlm data);
    returns xsl-prep trelm-align's report."""
    from preprocess.trelm_align import align_corpus

    return align_corpus(str(tiny_corpus["en"]), str(tiny_corpus["de"]), "en", "de",
                        str(tiny_data_bin / "spm.model"), str(tiny_data_bin / "dict.txt"), str(out), valid_lines=20)


def build_meta_per_language(tiny_corpus: dict, tiny_data_bin: Path, root: Path) -> Path:
    """``root/multi/{dict.txt,de,en,ru}`` (xsl_meta_mlm data): Russian has a third of the
    others' lines (unequal sampling)."""
    from preprocess.binarize import binarize_per_language

    ru = head(tiny_corpus["ru"], 100, root / "small.ru")
    binarize_per_language([f"en={tiny_corpus['en']}", f"de={tiny_corpus['de']}", f"ru={ru}"],
                          str(tiny_data_bin / "dict.txt"), str(root / "multi"),
                          spm_model=str(tiny_data_bin / "spm.model"), valid_lines=20)
    return root / "multi"


def write_toy_sentence_pairs(root: Path, examples: int = 96, seed: int = 0) -> Path:
    """A learnable sentence-pair set (input0/ input1/ label/ of 40 words, 2 labels): the label
    says which half of the vocabulary the pair's words mostly come from (robust to 30% of the
    words being replaced)."""
    import torch
    from fairseq.data import Dictionary

    from xsl_fairseq.data.features import write_sequences

    eos = Dictionary().eos()
    generator = torch.Generator().manual_seed(seed)
    firsts, seconds, labels = [], [], []
    for _ in range(examples):
        label = int(torch.randint(0, 2, (1,), generator=generator))
        low, high = (4, 24) if label == 0 else (24, 44)
        length = int(torch.randint(4, 9, (1,), generator=generator))
        firsts.append(torch.randint(low, high, (length,), generator=generator).tolist() + [eos])
        seconds.append(torch.randint(low, high, (length,), generator=generator).tolist() + [eos])
        labels.append([4 + label, eos])
    for key in ("input0", "input1", "label"):
        (root / key).mkdir(parents=True, exist_ok=True)
    with open(root / "input0" / "dict.txt", "w") as out:
        out.writelines(f"w{i} 1\n" for i in range(40))
    with open(root / "label" / "dict.txt", "w") as out:
        out.writelines(["0 1\n", "1 1\n"])
    write_sequences(str(root / "input0" / "train"), firsts)
    write_sequences(str(root / "input1" / "train"), seconds)
    write_sequences(str(root / "label" / "train"), labels)
    return root
