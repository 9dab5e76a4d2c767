"""python -m creditd: the same as the creditd command."""

from creditd.cli import main

main()
