"""The ``n2s`` command line and its demo (see ``n2s --help``)."""

from ._main import main

__all__ = ["main"]
