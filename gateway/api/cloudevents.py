"""CloudEvents 1.0 over HTTP: structured, batch and binary modes, into `IncomingEvent`s.

Order of refusals follows DESIGN.md: 413 (body too large), 415 (content type), 400
(malformed body), 403 (a source the key is not bound to), 422 (invalid fields). In batch mode
each event stands alone: a bad one becomes a problem in its slot and the others go on.
"""

from __future__ import annotations

import json
import math
from typing import Any
from urllib.parse import unquote

from aiohttp import web
from pydantic import BaseModel, ValidationError

from gateway.api.keys import KeyInfo
from gateway.api.problems import Problem
from gateway.api.schemas import EVENT_DATA, CloudEventIn
from gateway.errors import FieldProblem, InvalidFields
from gateway.protocols.service import IN_PROCESS, IncomingEvent, Requester

STRUCTURED = "application/cloudevents+json"
BATCH = "application/cloudevents-batch+json"
BINARY = "application/json"
ACCEPTED = (STRUCTURED, BATCH, BINARY)
CE_ATTRIBUTES = ("specversion", "id", "source", "type", "time", "subject", "dataschema")


def field_problems(error: ValidationError, prefix: str = "") -> list[FieldProblem]:
    problems = []
    for e in error.errors(include_url=False):
        path = ".".join(str(p) for p in e["loc"])
        message = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            message = "not a known field"
        problems.append(FieldProblem(prefix + path if path else prefix.rstrip("."), message))
    return problems


def decode_json(raw: bytes, *, stored: bool = True) -> Any:
    """The body as JSON, or Problem(400). A body that is `stored` may hold no NUL character."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Problem(400, f"the body is not valid UTF-8 (byte {exc.start})") from None
    if not text.strip():
        raise Problem(400, "the body is empty")
    try:
        value = json.loads(text, parse_constant=_no_constant, parse_float=_finite)
        # PostgreSQL text cannot hold NUL: refuse it here rather than fail at the database.
        nul = stored and "\\u0000" in text and _has_nul(value)
    except json.JSONDecodeError as exc:
        raise Problem(400, f"the body is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}") from None
    except ValueError as exc:  # NaN or Infinity (not JSON), or an integer past Python's 4,300 digits
        raise Problem(400, f"the body is not valid JSON: {exc}") from None
    except RecursionError:
        raise Problem(400, "the body is not valid JSON here: nested too deeply") from None
    if nul:
        raise Problem(400, "the body contains a NUL character (\\u0000), which no text field may hold")
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def _finite(literal: str) -> float:
    value = float(literal)
    if not math.isfinite(value):
        raise ValueError(f"{literal} is too large for a number")
    return value


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


def validate_data(event_type: str, data: Any, prefix: str = "data.") -> BaseModel:
    model = EVENT_DATA[event_type]
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidFields(field_problems(exc, prefix)) from None


def requester(key: KeyInfo) -> Requester:
    """Who posts: the key's name goes on every stored event; only protocols:write may redirect."""
    return Requester(key.name, may_send_elsewhere=key.allows("protocols:write"))


def to_incoming(envelope: Any, key: KeyInfo | None = None, *, field_prefix: str = "") -> IncomingEvent:
    """One structured event (a dict) into an IncomingEvent, or InvalidFields / Problem(400 or 403).
    Without a key the event is the gateway's own (benchmarks, tests): any source, no key recorded."""
    if not isinstance(envelope, dict):
        raise Problem(400, "an event must be a JSON object")
    try:
        ce = CloudEventIn.model_validate(envelope)
    except ValidationError as exc:
        raise InvalidFields(field_problems(exc, field_prefix)) from None
    if key is not None and not key.allows_source(ce.source):
        raise Problem(403, f"this key may not post events from the source {ce.source[:100]!r} "
                           f"({field_prefix}source): it is bound to other sources")
    data = validate_data(ce.type, ce.data, f"{field_prefix}data.")
    return IncomingEvent(source=ce.source, id=ce.id, type=ce.type, time=ce.time, data=data,
                         field_prefix=f"{field_prefix}data.", requester=requester(key) if key else IN_PROCESS)


def binary_envelope(request: web.Request, body: Any) -> dict[str, Any]:
    envelope: dict[str, Any] = {
        name: header_value(f"ce-{name}", request.headers[f"ce-{name}"])
        for name in CE_ATTRIBUTES if f"ce-{name}" in request.headers
    }
    envelope["datacontenttype"] = BINARY
    envelope["data"] = body
    return envelope


def header_value(name: str, raw: str) -> str:
    """A ce-* header as the event says it: percent-decoded as UTF-8 (CloudEvents HTTP binding,
    3.1.3.2), so that the same event sent in binary and in structured mode is one event."""
    try:
        return unquote(raw, encoding="utf-8", errors="strict")
    except UnicodeDecodeError:
        raise Problem(400, f"{name}: percent-encoded bytes that are not UTF-8") from None


async def parse(request: web.Request, key: KeyInfo) -> tuple[str, list[IncomingEvent | Exception]]:
    """('single' | 'batch', events or the error each one met), as posted with `key`."""
    raw = await request.read()
    content_type = request.content_type.lower()
    if content_type not in ACCEPTED:
        raise Problem(415, f"expected Content-Type {STRUCTURED}, {BATCH}, or {BINARY} with ce-* headers "
                           f"(got {content_type or 'none'})")
    body = decode_json(raw)
    if content_type == BATCH:
        if not isinstance(body, list):
            raise Problem(400, "a batch must be a JSON array of events")
        results: list[IncomingEvent | Exception] = []
        for event in body:
            try:
                results.append(to_incoming(event, key))
            except (Problem, InvalidFields) as exc:
                results.append(exc)
        return "batch", results
    if content_type == BINARY and "ce-specversion" in request.headers:
        return "single", [to_incoming(binary_envelope(request, body), key)]
    if content_type == BINARY and not (isinstance(body, dict) and "specversion" in body):
        raise Problem(400, "binary mode needs the headers ce-specversion, ce-id, ce-source and ce-type; "
                           f"or send a structured event as {STRUCTURED}")
    return "single", [to_incoming(body, key)]
