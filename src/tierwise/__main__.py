"""`python -m tierwise` is the `tierwise` command."""

from tierwise.cli.main import main

main()
