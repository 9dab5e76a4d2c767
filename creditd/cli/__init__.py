"""The command line: serve, accounts, operations and reports, over creditd.api and creditd.core."""
