"""Arbiter's server: gRPC servicers, validation, experiments, reward join, storage, CLI."""
