#!/usr/bin/env bash
# Build the one-folder bundle into packaging/dist/segstudio, then run its --self-test.
# Run from anywhere; uses the python of the active (or given) environment: PYTHON=.venv/bin/python
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
"$PYTHON" -m pip install -q -e '.[bundle]'
start=$(date +%s)
"$PYTHON" -m PyInstaller --noconfirm --log-level WARN \
  --distpath packaging/dist --workpath packaging/build packaging/segstudio.spec
echo "build time: $(( $(date +%s) - start )) s"
echo "bundle size: $(du -sh packaging/dist/segstudio | cut -f1) ($(find packaging/dist/segstudio -type f | wc -l) files)"
QT_QPA_PLATFORM=${QT_QPA_PLATFORM:-offscreen} packaging/dist/segstudio/segstudio --self-test
