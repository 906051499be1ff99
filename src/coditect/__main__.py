"""``python -m coditect`` runs the command-line interface."""

from coditect.cli.main import main

main()
