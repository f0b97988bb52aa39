"""The base class of the user's bad input that the project itself detects.

A bad config (ConfigError), a store that cannot be used (StoreError), an unknown run id
(UnknownRun), a bad flag, name, checkpoint or evaluation: the command line turns each into one
line on stderr and exit status 2; anything else is a bug and keeps its traceback.
"""


class InputError(Exception):
    """Bad input from the user: a flag, a name, a file or a setting that cannot be used."""
