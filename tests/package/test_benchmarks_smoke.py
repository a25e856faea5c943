"""Every benchmark script runs end to end with tiny arguments (the scripts are not tests and
pytest skips tests/benchmarks, so a script broken by a change elsewhere would otherwise go
unnoticed). Each runs in its own interpreter, as a user runs it; only that it completes is
checked here, not its figures (viewer_latency.py has its own check)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "tests" / "benchmarks"

# script: tiny arguments (each run well under a minute on two cores); "{tmp}" is a scratch folder
TINY = {
    "bench_time_to_dice.py": ["--smoke"],
    "gui_latency.py": ["--smoke"],
    "paint_latency.py": ["--size", "64", "--strokes", "2", "--moves", "5"],
    "bench_predict.py": ["--images", "2", "--side", "64", "--size", "32", "--device", "cpu"],
    "bench_pipeline.py": ["--n", "8", "--size", "32", "--src", "64", "--epochs", "1", "--reps", "1",
                          "--formats", "png", "--no-profile", "--quiet"],
    "bench_train_throughput.py": ["--slices", "16", "--sizes", "32", "--archs", "resnet18", "--epochs", "1",
                                  "--device", "cpu", "--compile", "off", "--budget-s", "1"],
    "bench_volumes.py": ["--n", "2", "--slices", "8", "--xy", "64", "--size", "32", "--bs", "4", "--images", "32",
                         "--root", "{tmp}/volumes"],
    "bench_metrics.py": ["--cases", "2", "--shape", "32", "32", "16", "--workers", "1", "--root", "{tmp}/metrics"],
    "bench_active_learning.py": ["--rounds", "2", "--k0", "2", "--k", "2", "--epochs", "1", "--epochs-next", "1",
                                 "--size", "64", "--seeds", "0"],  # 64 px: the 128 px sample resized, not patches
    "bench_recipe.py": ["--generate", "6", "--seconds", "4", "--seeds", "0", "--variants", "resize",
                        "--baseline", "resize", "--tta", "--size", "32", "--device", "cpu"],
    "bench_ddp.py": ["--processes", "2", "--images", "8", "--side", "32", "--size", "32", "--epochs", "2",
                     "--device", "cpu"],
    "bench_peer.py": ["--smoke"],
    "bench_folds.py": ["--sample", "--folds", "2", "--epochs", "1", "--size", "32", "--device", "cpu"],
}
SKIPPED = {"viewer_latency.py"}  # written and checked with the scan viewer


def test_every_benchmark_script_has_a_smoke_run():
    scripts = {p.name for p in BENCH.glob("*.py")} - SKIPPED
    assert scripts == set(TINY), "give each benchmark script tiny arguments in TINY"


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(TINY))
def test_benchmark_runs_with_tiny_arguments(script, tmp_path):
    args = [a.replace("{tmp}", str(tmp_path)) for a in TINY[script]]
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "PYTHONPATH": str(ROOT), "TMPDIR": str(tmp_path)}
    proc = subprocess.run([sys.executable, str(BENCH / script), *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)  # a shared, loaded machine
    assert proc.returncode == 0, f"{script} {' '.join(args)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
