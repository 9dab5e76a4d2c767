"""The domain: charging, accounts, the event feed, the sweeper, batch jobs and the auditor. Each
operation is one function call through creditd.store; nothing here knows gRPC."""
