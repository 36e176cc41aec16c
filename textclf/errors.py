"""The error hierarchy: library code raises these, only the CLI maps them to exit codes."""

MESSAGE_LIMIT = 300  # characters of a library's message kept in one of textclf's


def one_line(error: BaseException) -> str:
    """A library exception's message for a one-line error: the innermost explicit cause (`raise ... from`)
    that has a message, its first non-blank line, whitespace collapsed, at most MESSAGE_LIMIT characters
    (the type's name when there is no message)."""
    while error.__cause__ is not None and str(error.__cause__).strip():
        error = error.__cause__
    line = next((" ".join(ln.split()) for ln in str(error).splitlines() if ln.strip()), type(error).__name__)
    return line if len(line) <= MESSAGE_LIMIT else line[: MESSAGE_LIMIT - 3] + "..."


class TextclfError(Exception):
    """Base class; anything unexpected is exit code 1."""

    exit_code = 1


class UsageError(TextclfError):
    """Bad usage or bad input: the message names the problem in one line (exit 2)."""

    exit_code = 2


class DataError(UsageError):
    """A data source or file is missing, empty or lacks a required column."""


class BundleError(UsageError):
    """A folder is not a valid model bundle (missing files, wrong hash, unknown format)."""


class ConfigError(UsageError):
    """A configuration value is out of range or unknown."""


class PartialFailure(TextclfError):
    """The run finished but some inputs could not be read (exit 3)."""

    exit_code = 3
