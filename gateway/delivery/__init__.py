"""The outbox to the provider and back: notification rows, claims under a lease, the
dispatcher, retry decisions, receipts, fallback, status hooks, and the outbox for operations.

`channels/` holds one transport per file behind `send(message) -> Receipt`; the error tree
every transport raises is `errors`. May import: `rendering`, `store`, the top-level modules
(and `protocols.messages` to build a fallback's message). Never `api` or `web`.
"""
