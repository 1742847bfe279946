"""The ``arbiter`` command's argument parser: help with defaults, and ``--version``."""

from __future__ import annotations

import argparse
from importlib import metadata
from typing import Any

__all__ = ["DESCRIPTION", "HelpFormatter", "Parser", "version"]

DESCRIPTION = (
    "Arbiter: a contextual-bandit decision engine served over gRPC. `arbiter serve` runs the "
    "server; the other commands talk to a running server (simulate, experiments, traffic, "
    "report, promote) or read its decision log (evaluate, export, db). `arbiter COMMAND --help` "
    "shows each command's options and their defaults."
)


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Appends ``(default: X)`` to an option's help, except where there is nothing to say: no
    default (None), a flag (its default is just "off"), or a help text that already names it."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        help = action.help or ""
        if (action.default is None or isinstance(action.default, bool)
                or action.default == argparse.SUPPRESS or "default" in help
                or not action.option_strings):
            return help
        return f"{help} (default: %(default)s)" if help else "(default: %(default)s)"


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose help shows defaults; its subcommands' parsers are Parsers too
    (``add_subparsers`` makes parsers of the class of the parser it is called on)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def format_help(self) -> str:
        # Options without a help text still show their default (argparse leaves the help
        # column of an action without help empty, defaults included).
        for action in self._actions:
            if action.help is None and action.option_strings and action.default not in (
                    None, argparse.SUPPRESS) and not isinstance(action.default, bool):
                action.help = "(default: %(default)s)"
        return super().format_help()


def version() -> str:
    """``arbiter X.Y.Z`` from the installed distribution's metadata."""
    try:
        return f"arbiter {metadata.version('arbiter')}"
    except metadata.PackageNotFoundError:
        return "arbiter (version unknown: not installed as a distribution)"
