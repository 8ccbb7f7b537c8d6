"""Expected failures: raised by rules and use cases, shown to clients as typed ``errors``."""

from __future__ import annotations

from domain.enums import ErrorCode


class Refused(Exception):
    """A request the rules turn down; carries the code a client can act on."""

    def __init__(self, code: ErrorCode, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field


def not_found(what: str = "conversation", field: str | None = "id") -> Refused:
    """Anything the caller may not see is reported exactly like something absent."""
    return Refused(ErrorCode.NOT_FOUND, f"No such {what}.", field)


def invalid(message: str, field: str | None = None) -> Refused:
    return Refused(ErrorCode.INVALID_INPUT, message, field)


def forbidden(message: str = "Only organization owners and admins may do this.") -> Refused:
    return Refused(ErrorCode.FORBIDDEN, message)


class AlreadyStored(Exception):
    """A write lost a uniqueness race; the store hands back what won."""

    def __init__(self, existing: object | None = None) -> None:
        super().__init__("already stored")
        self.existing = existing
