"""What a key may do: its scopes (README, "Keys and scopes"). Apart from keys.py so that the CLI's
help can name them without loading SQLAlchemy."""

SCOPES = ("events:write", "protocols:read", "protocols:write", "templates:read", "outbox:admin", "console", "admin")
