"""The notifier: a front end beside api/, onto core/, that tells subscribers what happened to their
account (templates here; the delivery process follows)."""
