"""The base class of the user's bad input that the project itself detects.

The command line turns these (and the config's, the store's and an unknown run id's) into one
line on stderr and exit status 2; anything else is a bug and keeps its traceback.
"""


class InputError(Exception):
    """Bad input from the user: a flag, a name, a file or a setting that cannot be used."""
