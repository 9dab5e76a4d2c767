"""`creditd console`: the customer-care staff's web console (Starlette, Jinja2, no JavaScript), a gRPC
client of creditd's Accounts service with its own records (staff, sessions, approvals, audit log) in a
SQLite file."""
