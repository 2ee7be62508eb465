"""HTTP for people: the operations console at /console/, as server-rendered HTML.

Reads and acts through the same services as `api/` (search, reports, the export, the outbox's
admin, the protocol service): no second path to the data. May import every room but `api`'s
handlers (it shares the app's keys in `api.runtime_keys` and the API keys of `api.keys`).
"""
