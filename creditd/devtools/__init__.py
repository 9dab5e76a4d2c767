"""Test and benchmark infrastructure, not the runtime: proto generation and local Redis topologies."""
