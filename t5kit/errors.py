"""The base class of errors that t5kit reports to users as a message rather than a traceback."""


class T5kitError(Exception):
    """A user-facing error: bad input, a missing file, an incompatible checkpoint."""
