"""Arbiter clients: ``clients.python`` here; Node, Go and Java live in their own folders."""
