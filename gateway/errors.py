"""What the service can refuse, in its own words; the API turns each into problem+json."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FieldProblem:
    field: str    # a dotted path from the request body's root: "data.consumer.phone"
    message: str


class ServiceError(Exception):
    status = 500
    title = "Error"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class InvalidFields(ServiceError):
    status = 422
    title = "Invalid fields"

    def __init__(self, problems: list[FieldProblem], detail: str | None = None) -> None:
        super().__init__(detail or "; ".join(f"{p.field}: {p.message}" for p in problems))
        self.problems = problems


class NotFound(ServiceError):
    status = 404
    title = "Not found"


class Conflict(ServiceError):
    status = 409
    title = "Conflict"


class RateLimited(ServiceError):
    status = 429
    title = "Too many requests"

    def __init__(self, detail: str, retry_after: int) -> None:
        super().__init__(detail)
        self.retry_after = retry_after  # whole seconds, for the Retry-After header


class Forbidden(ServiceError):
    """The key may post this kind of event, but not this one (an address not on record, a source not its own)."""

    status = 403
    title = "Forbidden"
