"""HTTP for machines: aiohttp handlers under /v1, API keys and scopes, problem+json, OpenAPI.

Handlers parse and answer; what an event does is `protocols`' business. May import every room
but `web`.
"""
