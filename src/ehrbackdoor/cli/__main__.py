"""`python -m ehrbackdoor.cli`."""

from ehrbackdoor.cli import main

main()
