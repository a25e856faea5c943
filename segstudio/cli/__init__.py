"""The `segstudio` command: main.py parses the command line and runs the app or a headless command
(the console script's entry point is `segstudio.cli.main:main`); job.py, weights.py and evaluate.py
add their subcommands; desktop_entry.py installs the Linux menu entry."""
