"""/openapi.json, generated from the same pydantic models the handlers validate with."""

from __future__ import annotations

from typing import Any

from pydantic.json_schema import models_json_schema

from gateway.api import schemas as s

REF = "#/components/schemas/{model}"
_MODELS = [s.CloudEventIn, s.OpenedData, s.UpdatedData, s.ResolvedData, s.ReopenedData, s.ResendData,
           s.ResendRequest, s.EventAnswer, s.BatchAnswer, s.Problem, s.ProtocolOut, s.Health]


def _ref(model: type) -> dict[str, str]:
    return {"$ref": REF.format(model=model.__name__)}


def _problem(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/problem+json": {"schema": _ref(s.Problem)}}}


def _json(model: type, description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(model)}}}


COMMON = {"401": _problem("No or bad API key"), "403": _problem("The key lacks the scope"),
          "503": _problem("Database unavailable: nothing was accepted")}


def build_spec(version: str) -> dict[str, Any]:
    _, defs = models_json_schema([(m, "validation") for m in _MODELS], ref_template=REF)
    components = defs.get("$defs", {})
    event_schema = {"oneOf": [_ref(s.CloudEventIn)]}
    number = {"name": "number", "in": "path", "required": True, "schema": {"type": "string", "pattern": s.NUMBER_PATTERN}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "protocol-gateway", "version": version,
                 "description": "Issues, sends and resends customer-service protocol numbers."},
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
        "paths": {
            "/v1/events": {
                "post": {
                    "summary": "Post CloudEvents (structured, batch or binary mode)",
                    "x-scope": "events:write",
                    "requestBody": {"required": True, "content": {
                        "application/cloudevents+json": {"schema": event_schema},
                        "application/cloudevents-batch+json": {"schema": {"type": "array", "items": _ref(s.CloudEventIn)}},
                        "application/json": {"schema": {"type": "object",
                                                        "description": "binary mode: the event's data, with ce-* headers"}},
                    }},
                    "responses": {
                        "202": _json(s.EventAnswer, "Accepted: committed with its notifications"),
                        "200": {"description": "A repeat of an accepted event (duplicate: true), or a batch's results",
                                "content": {"application/json": {"schema": {"oneOf": [_ref(s.EventAnswer), _ref(s.BatchAnswer)]}}}},
                        "400": _problem("Malformed body"), "404": _problem("Unknown protocol"),
                        "409": _problem("Event id reused with other data, or number taken"),
                        "413": _problem("Body too large"), "415": _problem("Wrong content type"),
                        "422": _problem("Invalid fields"), **COMMON,
                    },
                }
            },
            "/v1/protocols/{number}": {
                "get": {
                    "summary": "A protocol with its events and notifications",
                    "x-scope": "protocols:read",
                    "parameters": [number],
                    "responses": {"200": _json(s.ProtocolOut, "The protocol"), "404": _problem("Unknown protocol"),
                                  **COMMON},
                }
            },
            "/v1/protocols/{number}/resend": {
                "post": {
                    "summary": "Send the protocol again (the REST form of protocol.resend_requested)",
                    "x-scope": "protocols:write",
                    "parameters": [number, {"name": "Idempotency-Key", "in": "header", "required": False,
                                            "schema": {"type": "string"}}],
                    "requestBody": {"required": True, "content": {"application/json": {"schema": _ref(s.ResendRequest)}}},
                    "responses": {"202": _json(s.EventAnswer, "Queued"), "200": _json(s.EventAnswer, "A repeat"),
                                  "400": _problem("Malformed body"), "404": _problem("Unknown protocol"),
                                  "409": _problem("Idempotency-Key reused with other data"),
                                  "413": _problem("Body too large"), "415": _problem("Wrong content type"),
                                  "422": _problem("Invalid fields"), **COMMON},
                }
            },
            "/healthz": {"get": {"summary": "The process serves", "security": [],
                                 "responses": {"200": _json(s.Health, "Alive")}}},
            "/readyz": {"get": {"summary": "Database, transports and scheduler ready", "security": [],
                                "responses": {"200": _json(s.Health, "Ready"), "503": _problem("Not ready")}}},
            "/metrics": {"get": {"summary": "Prometheus metrics", "security": [],
                                 "responses": {"200": {"description": "text/plain exposition",
                                                       "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
            "/openapi.json": {"get": {"summary": "This document", "security": [],
                                      "responses": {"200": {"description": "OpenAPI 3.1",
                                                            "content": {"application/json": {"schema": {"type": "object"}}}}}}},
        },
    }
