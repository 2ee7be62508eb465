"""What `protocol-gateway run` needs around the rooms: the listening socket bound before
anything else, files holding personal data kept private, free disk, readiness, and the
HTTP server's timeouts.

Imports: config, store (the database's files and state), delivery (the transports' probes)
and aiohttp; the rooms never import it (only app.py and the commands do).
"""
