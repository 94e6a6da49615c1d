"""The error type of bad user input."""


class InvalidInputError(ValueError):
    """A config, argument or file that cannot be used as given.

    The message names the file or key and the fix. ``tools/train.py`` and
    ``tools/test.py`` print it without a traceback: the traceback would
    point into the checking code, not at the problem.
    """
