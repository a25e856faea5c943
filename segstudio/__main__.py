"""`python -m segstudio`: the same entry point as the `segstudio` command."""

import sys

from .cli.main import main

if __name__ == "__main__":
    sys.exit(main())
