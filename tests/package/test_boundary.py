"""The core runs headless: importing and using it never loads Qt."""

import subprocess
import sys

import pytest

CORE = ["segstudio.config", "segstudio.data", "segstudio.training.session", "segstudio.training.lr_find",
        "segstudio.inference", "segstudio.runs", "segstudio.cli.main"]


@pytest.mark.slow
def test_core_imports_no_qt():
    code = ("import sys\n" + "".join(f"import {m}\n" for m in CORE) +
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('PySide6', 'pyqtgraph', 'superqt', 'qtpy'))\n"
            "print(','.join(bad))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "", f"Qt modules imported by the core: {out.stdout}"


@pytest.mark.slow
def test_package_import_is_light():
    out = subprocess.run([sys.executable, "-c", "import sys, segstudio; print('torch' in sys.modules)"],
                         capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False"
