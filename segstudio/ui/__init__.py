"""The PySide6 desktop GUI. Importing it pins the Qt binding for pyqtgraph and superqt."""

import os

os.environ.setdefault("QT_API", "pyside6")
os.environ.setdefault("PYQTGRAPH_QT_LIB", "PySide6")

import PySide6  # noqa: E402,F401  (must come before pyqtgraph / superqt)
