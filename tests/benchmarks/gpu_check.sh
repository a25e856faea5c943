#!/usr/bin/env bash
# The GPU checks to run on a lent CUDA machine, from any folder:
#
#     bash tests/benchmarks/gpu_check.sh          # at most ~10 min on an H200; outputs in $OUT if set
#
# 1. bench_train_throughput.py with its defaults: segstudio's whole training loop against the
#    ceiling (resnet18/34, 256/512 px, 2,000 synthetic slices), the host-sync report, and the
#    speed levers within a 270 s budget.
# 2. bench_predict.py --device cuda: predict_folder against the forward pass.
#
# Installs nothing when the dependencies are there: it uses .venv/bin/python if the checkout has
# one, else python3 (the scripts put the repository on sys.path); only when python3 cannot import
# fastai does it try `python3 -m pip install -e .`. Each step has a timeout, so the whole script
# stays under 10 minutes; a step that times out still leaves what it printed in its log.
set -u
cd "$(dirname "$0")/../.."
OUT="${OUT:-$(mktemp -d -t segstudio-gpu-check-XXXX)}"
export PYTHONUNBUFFERED=1
mkdir -p "$OUT"

if [ -x .venv/bin/python ]; then
    PY=.venv/bin/python
else
    PY=python3
    if ! "$PY" -c "import fastai" 2>/dev/null; then
        "$PY" -m pip install -e . || exit 1
    fi
fi

{
    echo "# $(date -u +%Y-%m-%dT%H:%M:%SZ) $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader 2>&1 || true
    "$PY" -c "import torch, fastai; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'fastai', fastai.__version__, 'gpu', torch.cuda.is_available())"
} 2>&1 | tee "$OUT/environment.txt"

status=0
echo "== training throughput" | tee "$OUT/bench_train_throughput.txt"
timeout 450 "$PY" tests/benchmarks/bench_train_throughput.py --device cuda \
    --json "$OUT/bench_train_throughput.json" 2>&1 | tee -a "$OUT/bench_train_throughput.txt"
status=$(( status | PIPESTATUS[0] ))

echo "== prediction throughput" | tee "$OUT/bench_predict.txt"
timeout 120 "$PY" tests/benchmarks/bench_predict.py --device cuda 2>&1 | tee -a "$OUT/bench_predict.txt"
status=$(( status | PIPESTATUS[0] ))

echo "outputs in $OUT (exit status $status)"
exit "$status"
