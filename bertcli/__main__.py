"""`python -m bertcli` entry point."""

from bertcli.cli import main

main()
