"""``benchmarks/run.py`` end to end on its smallest setting: one objective and its masked-LM baseline."""
import json
import os
import subprocess
import sys

from conftest import REPO_ROOT

RUN = REPO_ROOT / "benchmarks" / "run.py"


def run_benchmark(*args):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO_ROOT))
    return subprocess.run([sys.executable, str(RUN), *map(str, args)], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True)


def test_quick_run_writes_every_figure_for_the_objective_and_its_baseline(shared_data, tmp_path):
    proc = run_benchmark("--quick", "--only", "xsl_masked_lm", "--data", shared_data, "--out-dir", tmp_path,
                         "--work-dir", tmp_path / "work", "--pairs", 200, "--vocab-size", 500, "--batch-size", 8,
                         "--warmup", 1, "--updates", 2)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text(encoding="utf-8"))
    assert set(results["objectives"]) == {"xsl_masked_lm"} and results["miners"] == {}
    assert len(results["load_average_before"]) == 3 and results["settings"]["threads"] == 1
    row = results["objectives"]["xsl_masked_lm"]
    for key in ("words_per_second", "masked_lm_words_per_second", "time_ratio", "cpu_time_ratio",
                "pass_count_bound", "ratio_over_bound", "update_peak_growth_mib"):
        assert row[key] > 0, key
    assert isinstance(row["within_10pct_of_bound"], bool) and row["pass_count_bound"] == 1.0
    objective, baseline = row["objective"], row["masked_lm"]
    assert objective["role"] == "objective" and baseline["role"] == "masked_lm"
    assert len(objective["seconds_per_update_each"]) == len(baseline["cpu_seconds_per_update_each"]) == 2
    # two kernel counters (getrusage's ru_maxrss, /proc's VmHWM) that can differ by a few pages
    assert objective["process_peak_resident_mib"] + 2.0 >= objective["update_peak_resident_mib"] > 0
    # the same model, the same batches: the two criteria compute the same masked-LM loss
    assert objective["words_per_update"] == baseline["words_per_update"] and row["same_words"]
    assert objective["loss_per_update"] == baseline["loss_per_update"]
    table = (tmp_path / "results.md").read_text(encoding="utf-8")
    assert "| xsl_masked_lm |" in table and "load average" in table


def test_unknown_objective_is_a_clean_error(tmp_path):
    proc = run_benchmark("--only", "xsl_masked_lm,xsl_typo", "--out-dir", tmp_path)
    assert proc.returncode != 0 and "xsl_typo" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "results.json").exists()


def test_top1_count_of_the_mlm_loss_matches_argmax():
    """The accuracy count that replaced argmax (a profile showed it slow) counts the same hits."""
    import torch

    from xsl_fairseq.modules.mlm_loss import count_top1

    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(500, 300, generator=generator, requires_grad=True)
    targets = torch.randint(0, 300, (500,), generator=generator)
    targets[:50] = logits[:50].argmax(-1)  # some certain hits
    assert int(count_top1(logits, targets)) == int((logits.argmax(-1) == targets).sum()) >= 50
    assert not count_top1(logits, targets).requires_grad
