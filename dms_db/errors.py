"""The one exception tree of dms-db.

Every error a user can cause derives from :class:`UserError` and carries a
stable ``error_type`` (a machine-readable name that clients may rely on), an
HTTP status for the service layer, and a message that says what went wrong and
how to fix it.  Errors that are the system's own fault derive from
:class:`InternalError`; their messages are for operators and are never shown
verbatim to remote users.
"""

from __future__ import annotations


class DmsError(Exception):
    """Base class of all dms-db errors."""

    error_type: str = "DmsError"
    http_status: int = 500

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message} ({self.hint})"
        return self.message


class UserError(DmsError):
    """An error caused by the caller's input; safe to show to users."""

    error_type = "UserError"
    http_status = 400


class ConfigError(UserError):
    """The configuration is invalid or incomplete."""

    error_type = "ConfigError"


class SchemaError(UserError):
    """A catalog schema (Felis YAML) is invalid or lacks a needed annotation."""

    error_type = "SchemaError"


class NotFoundError(UserError):
    """A named object (schema, table, node, chunk) does not exist."""

    error_type = "NotFound"
    http_status = 404


class AlreadyExistsError(UserError):
    """An object that must be new already exists and differs from the request."""

    error_type = "AlreadyExists"
    http_status = 409


class StaleSchemaError(UserError):
    """A node's database schema is older than this version of dms-db expects."""

    error_type = "StaleSchema"
    http_status = 503


class RegionError(UserError):
    """A sky region is malformed (radius out of range, degenerate polygon...)."""

    error_type = "RegionError"


class SetupError(DmsError):
    """Something this machine lacks: a binary, an extension, a user account.

    The message names the exact package or command that fixes it.
    """

    error_type = "SetupError"
    http_status = 500


class ClusterError(DmsError):
    """A server of the cluster could not be started, stopped or reached."""

    error_type = "ClusterError"
    http_status = 503


class NodeUnavailableError(ClusterError):
    """A worker or the coordinator cannot be reached."""

    error_type = "NodeUnavailable"


class QueryTimeoutError(NodeUnavailableError):
    """Every replica of some chunks exceeded the statement timeout."""

    error_type = "QueryTimeout"
    http_status = 504


class QueryExecutionError(UserError):
    """A server rejected the query itself (SQLSTATE classes 22, 42...); retrying would not help."""

    error_type = "QueryExecutionError"

    def __init__(self, message: str, *, sqlstate: str | None = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.sqlstate = sqlstate


class InternalError(DmsError):
    """A bug or an unexpected state; details go to the log, not to users."""

    error_type = "InternalError"
