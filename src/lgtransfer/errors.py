"""The one exception type that means "the user asked for something impossible"."""


class UsageError(ValueError):
    """Bad input: unknown task or preset, malformed YAML, impossible length, missing file.

    The command line prints its message as one line on stderr and exits with status 2.
    """
