"""The one exception type that means "the user asked for something impossible", and the
argument parser whose own errors are that exception."""

import argparse


class UsageError(ValueError):
    """Bad input: unknown task or preset, malformed YAML, impossible length, missing file.

    The command line prints its message as one line on stderr and exits with status 2: a
    line break in it (from a user's value it quotes) is shown as `\\n`.
    """

    def __str__(self) -> str:
        return super().__str__().replace("\r", "\\r").replace("\n", "\\n")


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose own errors (a missing or unknown argument) are a `UsageError`: one line
    on stderr and exit 2, as every other bad input."""

    def error(self, message: str) -> None:
        raise UsageError(message)


class Interrupted(Exception):
    """A run stopped by SIGINT or SIGTERM at a step boundary, its resume point written.

    The command line says so in one line and exits 128 + the signal's number (130 / 143), as a
    shell does for a process killed by that signal; `lgt run` again resumes the run.
    """

    def __init__(self, signum: int, where: str) -> None:
        super().__init__(signum, where)
        self.signum, self.where = signum, where


class DiskFull(Exception):
    """A write failed for lack of space (ENOSPC). The run's temporary files are removed and it
    stays resumable; the command line says where and how much is free, and exits 74 (EX_IOERR).
    """

    STATUS = 74

    def __init__(self, path: str, run_dir: str) -> None:
        super().__init__(path, run_dir)
        self.path, self.run_dir = path, run_dir
