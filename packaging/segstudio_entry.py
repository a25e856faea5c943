"""The frozen app's entry point: PyInstaller runs this file as __main__ (see segstudio.spec)."""

import sys

from segstudio.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
