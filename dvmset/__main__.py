"""`python -m dvmset` runs the CLI."""

from dvmset.cli import main

main()
