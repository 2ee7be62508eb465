"""What happens to a case: events in, numbers, profiles and deadlines, contacts, messages,
inbound texts, rate limits, legal holds, anonymization and the evidence export.

Owns the event data schemas (`schemas`), which `api/` uses for validation and OpenAPI.
May import: `rendering`, `delivery` (to enqueue), `store`, and the top-level `config`,
`errors`, `clock`, `observability`. Never `api` or `web`.
"""
