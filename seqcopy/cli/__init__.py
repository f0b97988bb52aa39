"""The command line: the parser, the commands, and ``train -l``'s log folder with its plots."""

from seqcopy.cli.commands import main

__all__ = ["main"]
