"""The two kinds of user mistake every command reports in one line, without a traceback."""


class ConfigError(ValueError):
    """A problem with the user's arguments or settings files."""


class DataError(ValueError):
    """A problem with the user's data: the message names the file, the record and the field."""
