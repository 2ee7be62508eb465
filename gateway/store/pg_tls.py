"""TLS to PostgreSQL from the URL's query: asyncpg's `ssl=` and libpq's `sslmode=` alike.

Managed PostgreSQL services hand out libpq URLs (`?sslmode=require`); SQLAlchemy would
pass `sslmode` on to asyncpg as a keyword it does not know (a TypeError at the first
connection). Both spellings are taken out of the URL here and become asyncpg's `ssl`
argument, with libpq's meaning: `require` encrypts without checking the certificate
(unless `sslrootcert` names a CA, as in libpq), `verify-ca` checks it against the CA,
`verify-full` also checks the host name. `sslcert` and `sslkey` give a client certificate.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import make_url

from gateway.config import ConfigError

MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
_TLS_KEYS = ("ssl", "sslmode", "sslrootcert", "sslcert", "sslkey")


@dataclass(frozen=True)
class PostgresTarget:
    url: str                                 # the SQLAlchemy URL without the TLS options
    connect_args: dict[str, Any] = field(default_factory=dict)  # asyncpg.connect keywords: ssl, timeout

    @property
    def dsn(self) -> str:
        """For a plain `asyncpg.connect(dsn, **connect_args)` (the LISTEN connection)."""
        return self.url.replace("postgresql+asyncpg://", "postgresql://", 1)


def postgres_target(url: str, *, connect_timeout: float | None = None) -> PostgresTarget:
    parsed = make_url(url)
    query = {k: (v[-1] if isinstance(v, tuple) else v) for k, v in parsed.query.items()}
    options = {k: query.pop(k) for k in _TLS_KEYS if k in query}
    args: dict[str, Any] = {}
    if connect_timeout:
        args["timeout"] = connect_timeout
    tls = _tls(options)
    if tls is not None:
        args["ssl"] = tls
    plain = parsed.set(query=query).render_as_string(hide_password=False)
    return PostgresTarget(plain, args)


def _tls(options: dict[str, str]) -> ssl.SSLContext | str | None:
    given = {k: options[k] for k in ("ssl", "sslmode") if k in options}
    if len(set(given.values())) > 1:
        raise ConfigError(f"database.url: ssl={given['ssl']!r} and sslmode={given['sslmode']!r} disagree: give one")
    mode = next(iter(given.values()), None)
    if mode is not None and mode not in MODES:
        raise ConfigError(f"database.url: sslmode={mode!r}: expected one of {', '.join(MODES)}")
    ca, cert, key = options.get("sslrootcert"), options.get("sslcert"), options.get("sslkey")
    if mode == "require" and ca:
        mode = "verify-ca"  # libpq: require with a root certificate checks the chain
    if mode in (None, "disable", "allow", "prefer") or (mode == "require" and not cert):
        return mode
    try:
        if mode == "require":
            context = ssl.create_default_context()
            context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        else:
            context = ssl.create_default_context(cafile=ca)  # no sslrootcert: the system's CAs
            context.check_hostname = mode == "verify-full"
        if cert:
            context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"database.url: cannot use the TLS files given (sslrootcert, sslcert, sslkey): {exc}") from None
    return context
