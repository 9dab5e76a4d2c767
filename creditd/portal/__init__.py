"""The subscribers' self-service web page (`creditd portal`): a Starlette application that talks to
creditd over gRPC (SelfService, role portal) and keeps no state of its own but a per-address count of
sign-in codes asked."""
