"""/openapi.json, generated from the same pydantic models the handlers validate with."""

from __future__ import annotations

from typing import Any

from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue, models_json_schema
from pydantic_core import core_schema

from gateway.api import schemas as s
from gateway.api.schemas import status_list_pattern
from gateway.protocols import reports, search

REF = "#/components/schemas/{model}"
# Requests whose text is stored (each event type with its own `data`; dead letters' reasons)...
_STORED = [s.CloudEventIn, *s.EVENT_ENVELOPES.values(), s.OpenedData, s.UpdatedData, s.ResolvedData,
           s.ReopenedData, s.ResendData, s.ResendRequest, s.DeadlineExtendedData, s.RetentionExtendedData,
           s.OutboxRetryRequest, s.OutboxRequeueRequest, s.FulfilRequest]
# ...and the rest: a preview (it stores nothing) and what the gateway answers.
_OTHERS = [s.TemplatePreviewRequest, s.EventAnswer, s.BatchAnswer, s.Problem, s.ProtocolOut, s.Health,
           s.TemplatePreview, s.TemplateList, s.ProtocolExport, s.OutboxList, s.OutboxItem, s.OutboxRequeueAnswer,
           s.ProtocolList, s.ComplianceReport, s.FulfilledAnswer]


# The body of a request that is stored may hold no NUL character (PostgreSQL text cannot): the
# gateway answers 400 for one anywhere in it, and the spec says so on every string such a request types.
NUL_FREE = "^[^\\u0000]*$"


class NulFreeJsonSchema(GenerateJsonSchema):
    def str_schema(self, schema: core_schema.StringSchema) -> JsonSchemaValue:
        out = super().str_schema(schema)
        if "pattern" in out:
            return {**out, "allOf": [{"pattern": NUL_FREE}]}
        return {**out, "pattern": NUL_FREE}

    def dict_schema(self, schema: core_schema.DictSchema) -> JsonSchemaValue:
        return {**super().dict_schema(schema), "propertyNames": {"pattern": NUL_FREE}}


def _ref(model: type) -> dict[str, str]:
    return {"$ref": REF.format(model=model.__name__)}


def _problem(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/problem+json": {"schema": _ref(s.Problem)}}}


def _json(model: type, description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(model)}}}


COMMON = {"401": _problem("No or bad API key"),
          "403": _problem("The key lacks the scope, or may not do this: post as a source it is not bound to, "
                          "resend to an address not on record"),
          "429": {**_problem("The key made more requests than limits.requests_per_key allows"),
                  "headers": {"Retry-After": {"description": "seconds until one more request fits",
                                              "schema": {"type": "integer"}}}},
          "503": _problem("Database unavailable: nothing was accepted")}


# What the schemas cannot say: a request that fits them may still name no real contact.
WORLDLY_422 = ("Invalid fields: also for a request that fits the schema but names a phone number that does not "
               "exist, an address email_validator refuses, a locale CLDR does not know, no contact for a channel "
               "to notify, or a time before the opening or after receipt")


def build_spec(version: str) -> dict[str, Any]:
    _, stored = models_json_schema([(m, "validation") for m in _STORED], ref_template=REF,
                                   schema_generator=NulFreeJsonSchema)
    _, others = models_json_schema([(m, "validation") for m in _OTHERS], ref_template=REF)
    components = {**stored.get("$defs", {}), **others.get("$defs", {})}
    event_schema = {"oneOf": [_ref(m) for m in s.EVENT_ENVELOPES.values()]}
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
                        # Each entry stands alone: one that is not a valid event is a problem in its slot
                        # of a 200 answer, so the array may hold anything.
                        "application/cloudevents-batch+json": {"schema": {
                            "type": "array", "items": {"description": "an event, as in structured mode"}}},
                        # Binary mode (ce-specversion, ce-id, ce-source, ce-type headers) takes the event's
                        # `data` as the body; without those headers the body is a structured event.
                        "application/json": {"schema": {
                            **event_schema, "description": "a structured event; or, with the headers ce-specversion, "
                                                           "ce-id, ce-source, ce-type (and ce-time), the event's data"}},
                    }},
                    "responses": {
                        "202": _json(s.EventAnswer, "Accepted: committed with its notifications"),
                        "200": {"description": "A repeat of an accepted event (duplicate: true), or a batch's results",
                                "content": {"application/json": {"schema": {"oneOf": [_ref(s.EventAnswer), _ref(s.BatchAnswer)]}}}},
                        "400": _problem("Malformed body"), "404": _problem("Unknown protocol"),
                        "409": _problem("Event id reused with other data, or number taken"),
                        "413": _problem("Body too large"), "415": _problem("Wrong content type"),
                        "422": _problem(WORLDLY_422), **COMMON,
                    },
                }
            },
            "/v1/protocols": {"get": {
                "summary": "Find protocols by contact, status, deadline, category, profile or date, newest first",
                "x-scope": "protocols:read", "parameters": _search_parameters(),
                "responses": {"200": _json(s.ProtocolList, "A page"),
                              "422": _problem("Invalid parameters: `errors[].field` names each, unknown ones too"),
                              **COMMON}}},
            "/v1/reports/compliance": {"get": {
                "summary": "Per category, profile or channel: opened, resolved within the deadline, open past it, "
                           "consumer requests in time, notifications by channel and status",
                "x-scope": "protocols:read", "parameters": _report_parameters(),
                "responses": {"200": {"description": "The report; CSV for Accept: text/csv or format=csv",
                                      "content": {"application/json": {"schema": _ref(s.ComplianceReport)},
                                                  "text/csv": {"schema": {"type": "string"}}}},
                              "422": _problem("Invalid parameters"), **COMMON}}},
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
                                  "422": _problem(WORLDLY_422), **COMMON},
                }
            },
            **_operations_paths(number),
            **_hold_and_webhook_paths(number),
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


def _search_parameters() -> list[dict[str, Any]]:
    text = {"type": "string", "minLength": 1, "maxLength": search.MAX_TEXT, "pattern": NUL_FREE}
    day = {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}$", "format": "date"}
    params = [
        ("number", {"type": "string", "pattern": s.NUMBER_PATTERN}, "exactly this number"),
        ("phone", {"type": "string"}, "E.164, or national in the first of sms.allowed_countries; compared as E.164"),
        ("email", {"type": "string", "format": "email"}, "the consumer's address; case does not matter"),
        ("status", {"type": "string", "pattern": status_list_pattern(search.STATUSES)},
         "comma-separated: open, resolved, reopened, anonymized"),
        ("overdue", {"type": "string", "enum": ["true", "false"]}, "true: open or reopened past its deadline"),
        ("category", text, None), ("profile", text, None),
        ("opened_from", day, "opened on or after this day (gateway.timezone)"),
        ("opened_to", day, "opened on or before this day (gateway.timezone)"),
        ("limit", {"type": "integer", "minimum": 1, "maximum": search.MAX_LIMIT}, f"default {search.DEFAULT_LIMIT}"),
        ("cursor", {"type": "string", "maxLength": 200}, "next_cursor of the previous page"),
    ]
    return [{"name": name, "in": "query", "schema": schema, **({"description": d} if d else {})}
            for name, schema, d in params]


def _report_parameters() -> list[dict[str, Any]]:
    day = {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}$", "format": "date"}
    return [
        {"name": "from", "in": "query", "schema": day,
         "description": f"first day opened (gateway.timezone); default: {reports.DEFAULT_DAYS} days before `to`"},
        {"name": "to", "in": "query", "schema": day, "description": "last day opened, included; default: today"},
        {"name": "group_by", "in": "query", "schema": {"type": "string", "enum": list(reports.GROUPS)},
         "description": "default category"},
        {"name": "format", "in": "query", "schema": {"type": "string", "enum": ["json", "csv"]},
         "description": "csv: the same as Accept: text/csv"},
    ]


def _operations_paths(number: dict[str, Any]) -> dict[str, Any]:
    """Templates, evidence and dead letters (see the README's sections of the same names)."""
    def body(model: type, required: bool = False) -> dict[str, Any]:
        return {"required": required, "content": {"application/json": {"schema": _ref(model)}}}

    refusals = {"400": _problem("Malformed body"), "413": _problem("Body too large"),
                "415": _problem("Wrong content type"), "422": _problem("Invalid fields")}
    return {
        "/v1/templates": {"get": {
            "summary": "Templates with their audience, locales and channels", "x-scope": "templates:read",
            "responses": {"200": _json(s.TemplateList, "The templates"), **COMMON}}},
        "/v1/templates/{name}/preview": {"post": {
            "summary": "Render a template with its sample (and the data given) as the consumer would get it",
            "x-scope": "templates:read",
            "parameters": [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}],
            "requestBody": body(s.TemplatePreviewRequest),
            "responses": {"200": _json(s.TemplatePreview, "Rendered"),
                          **refusals, "422": _problem("Invalid fields, or the template does not render: "
                                                      "`errors[].field` names the variable (data.x.y) or `template`; "
                                                      "`file`, `line` and `variable` say where"),
                          "404": _problem("Unknown template, or one without the channel asked for"), **COMMON}}},
        "/v1/protocols/{number}/export": {"get": {
            "summary": "The complete record of a protocol, with the SHA-256 digest of its canonical JSON",
            "x-scope": "protocols:read", "parameters": [number],
            "responses": {"200": _json(s.ProtocolExport, "The evidence"), "404": _problem("Unknown protocol"),
                          **COMMON}}},
        "/v1/outbox": {"get": {
            "summary": "Notifications by status, newest first (default: dead, failed, undelivered, unknown)",
            "x-scope": "outbox:admin",
            "parameters": [
                {"name": "status", "in": "query", "schema": {"type": "string", "pattern": s.OUTBOX_STATUSES},
                 "description": "comma-separated statuses, or pending, attention, all"},
                {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000}},
                {"name": "before", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 2**63 - 1},
                 "description": "ids below this"},
                {"name": "protocol", "in": "query", "schema": {"type": "string", "pattern": s.NUMBER_PATTERN}}],
            "responses": {"200": _json(s.OutboxList, "A page"), "422": _problem("Invalid parameters"),
                          **COMMON}}},
        "/v1/outbox/{id}/retry": {"post": {
            "summary": "Queue one notification again, due now (never one that was delivered)",
            "x-scope": "outbox:admin",
            "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}}],
            "requestBody": body(s.OutboxRetryRequest),
            "responses": {"200": _json(s.OutboxItem, "Queued"), **refusals,
                          "404": _problem("Unknown notification"),
                          "409": _problem("Sent, delivered, in flight or cancelled: not sent again"), **COMMON}}},
        "/v1/outbox/requeue": {"post": {
            "summary": "Queue again every notification in a status (never one that was delivered)",
            "x-scope": "outbox:admin", "requestBody": body(s.OutboxRequeueRequest, required=True),
            "responses": {"200": _json(s.OutboxRequeueAnswer, "Queued"), **refusals, **COMMON}}},
    }


def _hold_and_webhook_paths(number: dict[str, Any]) -> dict[str, Any]:
    """Legal holds (README "Retention and anonymization") and Twilio's webhooks ("Texting the gateway")."""
    reason = {"required": False, "content": {"application/json": {"schema": {
        "type": "object", "additionalProperties": False,
        "properties": {"reason": {"type": ["string", "null"], "maxLength": 500, "pattern": NUL_FREE}}}}}}
    held = {"description": "The hold as it is now; `changed` is false when it already was so",
            "content": {"application/json": {"schema": {
                "type": "object", "required": ["number", "legal_hold", "changed"],
                "properties": {"number": {"type": "string"}, "legal_hold": {"type": "boolean"},
                               "changed": {"type": "boolean"}}}}}}
    hold_answers = {"200": held, "400": _problem("Malformed body"), "404": _problem("Unknown protocol"),
                    "409": _problem("The protocol is anonymized"), "413": _problem("Body too large"),
                    "415": _problem("Wrong content type"), "422": _problem("Invalid fields"), **COMMON}
    hold = {"x-scope": "protocols:write", "parameters": [number], "requestBody": reason, "responses": hold_answers}
    signature = {"name": "X-Twilio-Signature", "in": "header", "required": False, "schema": {"type": "string"},
                 "description": "Twilio's signature over http.public_url + path and the form; checked first"}

    def form(fields: dict[str, Any]) -> dict[str, Any]:
        return {"required": False, "content": {"application/x-www-form-urlencoded": {"schema": {
            "type": "object", "properties": {k: {"type": "string"} for k in fields}}}}}

    webhook_refusals = {"400": _problem("A required field is missing"),
                        "403": _problem("The signature is missing or does not match (nothing happened)"),
                        "413": _problem("Body too large"), "503": _problem("Database unavailable: retry")}
    request_id = {"name": "id", "in": "path", "required": True, "schema": {"type": "string", "pattern": "^[0-9]{1,19}$"}}
    return {
        "/v1/protocols/{number}/requests/{id}/fulfilled": {"post": {
            "summary": "Mark a postal request fulfilled (the gateway marks email and SMS requests itself)",
            "x-scope": "protocols:write", "parameters": [number, request_id],
            "requestBody": {"required": False, "content": {"application/json": {"schema": _ref(s.FulfilRequest)}}},
            "responses": {"200": _json(s.FulfilledAnswer, "The request as it is now; `changed` is false when it "
                                                         "already was fulfilled"),
                          "400": _problem("Malformed body"), "404": _problem("Unknown protocol or request"),
                          "409": _problem("Not a postal request: the gateway fulfils it when its message leaves"),
                          "413": _problem("Body too large"), "415": _problem("Wrong content type"),
                          "422": _problem("Invalid fields"), **COMMON}}},
        "/v1/protocols/{number}/legal-hold": {
            "post": {"summary": "Place a legal hold: the record is kept whatever the retention says", **hold},
            "delete": {"summary": "Lift a legal hold", **hold},
        },
        "/v1/webhooks/twilio/inbound": {"post": {
            "summary": "An SMS from a consumer (Twilio's \"A message comes in\" webhook)", "security": [],
            "parameters": [signature], "requestBody": form({"From": 1, "To": 1, "Body": 1, "MessageSid": 1}),
            "responses": {"200": {"description": "Received; the reply goes through the outbox",
                                  "content": {"text/xml": {"schema": {"type": "string"}}}}, **webhook_refusals}}},
        "/v1/webhooks/twilio/status": {"post": {
            "summary": "A delivery receipt (the StatusCallback of an outbound SMS)", "security": [],
            "parameters": [signature, {"name": "notification", "in": "query", "required": False,
                                       "schema": {"type": "string"}}],
            "requestBody": form({"MessageSid": 1, "MessageStatus": 1, "ErrorCode": 1}),
            "responses": {"204": {"description": "Recorded"}, **webhook_refusals}}},
        "/u/{token}": _unsubscribe_paths(),
        **_consumer_page_paths(),
    }


def _consumer_page_paths() -> dict[str, Any]:
    """The consumer's page: for people, in HTML; listed so that every route is (README "The consumer's page")."""
    token = {"name": "token", "in": "path", "required": True,
             "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]{22}$"},
             "description": "from the link in the consumer's messages: 22 characters of base64url (any other "
                            "gets the same 404 page)"}
    html = {"text/html": {"schema": {"type": "string"}}}
    page = {"description": "The page", "content": html}
    gone = {"description": "A wrong, expired or revoked link: the same page for all three", "content": html}
    return {
        "/p/{token}": {
            "get": {"summary": "The consumer's page: the protocol and its whole history", "security": [],
                    "parameters": [token], "responses": {"200": page, "404": gone}},
            "post": {"summary": "The whole history sent again by email or SMS, to the contacts on record",
                     "security": [], "parameters": [token],
                     "requestBody": {"required": False, "content": {"application/x-www-form-urlencoded": {"schema": {
                         "type": "object", "properties": {"channel": {"type": "string", "enum": ["email", "sms"]}}}}}},
                     "responses": {"200": {"description": "The page, saying what will arrive and by when",
                                           "content": html},
                                   "404": gone, "413": _problem("Body too large"),
                                   "422": {"description": "A channel with no contact on record", "content": html},
                                   "429": {"description": "Past the resend limits, with Retry-After", "content": html}}},
        },
        "/p/page.css": {"get": {"summary": "The consumer's page's stylesheet", "security": [], "responses": {
            "200": {"description": "CSS", "content": {"text/css": {"schema": {"type": "string"}}}}}}},
    }


def _unsubscribe_paths() -> dict[str, Any]:
    token = {"name": "token", "in": "path", "required": True,
             "schema": {"type": "string", "pattern": r"^[0-9]{1,18}\.[a-z2-7]{16}$"},
             "description": "the notification's id and an HMAC of it, from the List-Unsubscribe header"}
    html = {"text/html": {"schema": {"type": "string"}}}
    text = {"text/plain": {"schema": {"type": "string"}}, **html}
    return {
        "get": {"summary": "A page with one button to stop email reminders (a GET changes nothing)", "security": [],
                "parameters": [token], "responses": {"200": {"description": "The page", "content": html},
                                                     "404": {"description": "Unknown link", "content": html}}},
        "post": {"summary": "One-click unsubscribe from email reminders (RFC 8058)", "security": [],
                 "parameters": [token],
                 "requestBody": {"required": False, "content": {"application/x-www-form-urlencoded": {"schema": {
                     "type": "object", "properties": {"List-Unsubscribe": {"type": "string"}}}}}},
                 "responses": {"200": {"description": "Unsubscribed (HTML when the request accepts it)", "content": text},
                               "404": {"description": "Unknown link", "content": text},
                               "413": _problem("Body too large")}},
    }
