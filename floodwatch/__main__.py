"""`python -m floodwatch` is the `floodwatch` command."""

from floodwatch.cli import main

main()
