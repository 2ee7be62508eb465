"""HTTP for people: the operations console and the consumer's page, as server-rendered HTML.

Empty until those pages arrive. Reads through the same services as `api/` (no second path
to the data); may import every room but `api`'s handlers.
"""
