"""Redis: key names, one builder per Lua function call, reply decoding, the auto-pipeline, the
connection (one server, Sentinel, Cluster) and the embedded server. Imports only the bottom layer."""
