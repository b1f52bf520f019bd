"""The domain: plain typed functions that raise domain errors and flush, never commit."""


class DomainError(Exception):
    """A rule of the domain refused an action; the message is shown to the user (localised)."""

    code = "domain_error"
    status = 422

    def __init__(self, message: str, *, code: str | None = None, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        self.field = field


class NotAllowed(DomainError):
    """The actor may not do this to this object."""

    code = "forbidden"
    status = 403


class Conflict(DomainError):
    """The action contradicts the current state (limit reached, already decided)."""

    code = "conflict"
    status = 409
