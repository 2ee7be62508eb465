"""A request body that must be a JSON object, as the `/v1` handlers that take one read it:
415 when it is not JSON, 400 when it is not an object, 422 naming each field a model refuses."""

from __future__ import annotations

from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from gateway.api import cloudevents
from gateway.api.problems import Problem
from gateway.errors import InvalidFields

Model = TypeVar("Model", bound=BaseModel)


async def json_object(request: web.Request, *, optional: bool = False) -> dict[str, Any]:
    """The body as a JSON object; an empty body is `{}` where the body is `optional`."""
    return parse_object(request, await request.read(), optional=optional)


def parse_object(request: web.Request, raw: bytes, *, optional: bool = False, stored: bool = True) -> dict[str, Any]:
    """`raw`, the request's body already read, as a JSON object (`stored`: see decode_json)."""
    if optional and not raw.strip():
        return {}
    if request.content_type != "application/json":
        raise Problem(415, f"expected Content-Type application/json (got {request.content_type or 'none'})")
    body = cloudevents.decode_json(raw, stored=stored)
    if not isinstance(body, dict):
        raise Problem(400, "the body must be a JSON object")
    return body


async def json_model(request: web.Request, model: type[Model]) -> Model:
    """An optional JSON object body, validated by `model`."""
    try:
        return model.model_validate(await json_object(request, optional=True))
    except ValidationError as exc:
        raise InvalidFields(cloudevents.field_problems(exc)) from None
