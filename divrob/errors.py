"""User-facing errors. The CLI prints these without a traceback and exits non-zero."""

from __future__ import annotations


class DivrobError(Exception):
    """A mistake the user can fix; the message says what to do."""

    exit_code = 1


class RecipeError(DivrobError):
    """A recipe that does not parse or validate: names the file, the field and the reason."""

    exit_code = 2

    def __init__(self, path, field: str, reason: str):
        self.path = str(path)
        self.field = field
        self.reason = reason
        where = f"{self.path}: {field}" if field else self.path
        super().__init__(f"{where}: {reason}")


class UsageError(DivrobError):
    """A bad option or argument, a combination of them that cannot go together, or a name that
    is not there (a study, a split): the command line must change."""

    exit_code = 2


class WorkspaceError(DivrobError):
    """A workspace that is missing, unreadable or badly configured."""


class ConfigError(WorkspaceError):
    """A divrob.toml, or a workspace path, that the user must correct (a usage mistake)."""

    exit_code = 2


class SourceError(DivrobError):
    """A data source that is missing, in the wrong layout, or cannot give what was asked."""


class SourceNameError(SourceError):
    """A source name divrob does not know, or one whose root divrob.toml does not set: the name
    or the config must change."""

    exit_code = 2


class ManifestError(DivrobError):
    """A distribution that cannot be materialised from its source (too few images, ...)."""

    exit_code = 2


class RunError(DivrobError):
    """A run that failed or cannot start."""


class WeightsError(DivrobError):
    """External initial weights that cannot be found or do not fit the model: says which file or
    keys, and what to do."""

    exit_code = 2


class OutputPathError(DivrobError):
    """A file to write whose path cannot hold one: a parent is a file, or it is a directory."""

    exit_code = 2
