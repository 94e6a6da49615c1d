"""The error type of bad user input."""


class InvalidInputError(ValueError):
    """A config, argument or file that cannot be used as given.

    The message names the file or key and the fix. ``tools/train.py`` and
    ``tools/test.py`` print it without a traceback: the traceback would
    point into the checking code, not at the problem.
    """


class MissingInputFileError(InvalidInputError, FileNotFoundError):
    """A file named in a config or argument does not exist.

    Also a :class:`FileNotFoundError`, so code that catches that keeps
    working.
    """


class InputPathTypeError(InvalidInputError, TypeError):
    """A path argument that is not a path (e.g. an int, which ``open``
    would take as a file descriptor)."""
