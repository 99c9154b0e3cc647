"""`python -m dvmset` runs the CLI."""

from dvmset.cli.main import main

main()
