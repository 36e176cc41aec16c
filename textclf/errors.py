"""The error hierarchy: library code raises these, only the CLI maps them to exit codes."""


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
