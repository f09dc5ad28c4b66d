"""The `floodwatch` command line: one module per command group, one shared time
parser; a thin layer that turns errors into one line and an exit code. Imports
heavy modules only inside commands, so start-up stays fast."""

from floodwatch.cli.main import main

__all__ = ["main"]
