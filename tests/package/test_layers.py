"""The import-linter contracts in pyproject.toml hold, and a breach of either one fails them."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")

pytestmark = [pytest.mark.skipif(LINT is None, reason="import-linter is not installed"), pytest.mark.slow]


def lint(root: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(root)}  # the copy comes before the installed package
    return subprocess.run([LINT, "--no-cache"], cwd=root, env=env, capture_output=True, text=True,
                          timeout=300)


@pytest.fixture
def copy(tmp_path):
    shutil.copytree(ROOT / "segstudio", tmp_path / "segstudio",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    return tmp_path


@pytest.mark.parametrize("module, line, broken", [
    ("data/_breach.py", "from PySide6.QtCore import QObject\n", "Only the GUI imports Qt"),
    ("training/_breach.py", "from segstudio.inference import Predictor\n", "Layers"),
    ("inference/_breach.py", "import segstudio.workers\n", "Layers"),
    ("cluster/_breach.py", "from segstudio.cli.job import run\n", "Layers"),
])
def test_a_breach_breaks_a_contract(copy, module, line, broken):
    assert lint(copy).returncode == 0  # the copy as it is keeps both contracts
    (copy / "segstudio" / module).write_text(line)
    out = lint(copy)
    assert out.returncode != 0 and f"{broken}" in out.stdout and "BROKEN" in out.stdout, out.stdout
