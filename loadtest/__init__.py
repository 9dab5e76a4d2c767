"""creditd's load generator: realistic gateway traffic against a running or self-started server,
with baselines measured in the same run (a bare gRPC echo server, raw pipelined Redis calls)."""
