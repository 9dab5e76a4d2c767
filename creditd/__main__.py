"""python -m creditd: the same as the creditd command."""

from creditd.cli.main import main

main()
