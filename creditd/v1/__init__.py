"""Generated protobuf and gRPC code for creditd.v1 (python -m creditd.protogen)."""
