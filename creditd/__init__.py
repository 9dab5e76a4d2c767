"""creditd: a real-time prepaid balance and credit-control server (gRPC over Redis Functions)."""

__version__ = "0.1.0"
