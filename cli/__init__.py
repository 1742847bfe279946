"""The `arbiter` command and the client programs it runs (simulate, report, promote, evaluate)."""
