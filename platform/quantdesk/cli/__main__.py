"""`python -m quantdesk.cli` runs the CLI (handy where the console script is not on PATH)."""

from quantdesk.cli import main

main()
