"""`python -m floodwatch` is the `floodwatch` command."""

from floodwatch.cli.commands import main

main()
