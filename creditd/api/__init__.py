"""The gRPC edge: servicers, message converters, the one error-mapping decorator, auth, validation,
per-client limits, health and the metrics endpoint, over creditd.core."""
