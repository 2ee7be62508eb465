"""A light fake of Twilio's Messages API in a process of its own: accept, count, answer 201.

The test fake (tests/fakes/twilio_api.py) parses every form, keeps every POST and can
script errors; it runs in the test's own loop. For a benchmark the fake must cost little
and run outside the measured process, as bench/sink.py does for SMTP: this one checks the
Basic auth header against the one expected (a string comparison), reads the body without
parsing it, counts, and answers with the fields the SDK reads (`sid`, `status`,
`num_segments`). The gateway's TwilioTransport and the raw SDK baseline post to the same
fake, so both pay the same server cost.

    async with TwilioFakeProcess() as fake:   # fake.base_url, fake.account_sid, fake.auth_token
        before, _ = await fake.count()

Run alone: `python -m bench.twilio_fake SID TOKEN` prints `port N`, then answers `count`
on stdin with `count MESSAGES BYTES`; end of input stops it.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import sys

from bench.child import HOST, ChildServer, answer_commands

ACCOUNT_SID = "AC" + "b" * 32
AUTH_TOKEN = "bench-auth-token"
PATH = "/2010-04-01/Accounts/{sid}/Messages.json"


def basic_auth(login: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{login}:{password}".encode()).decode("ascii")


async def serve(account_sid: str, auth_token: str) -> None:
    from aiohttp import web

    expected = basic_auth(account_sid, auth_token)
    counts = {"messages": 0, "bytes": 0}
    sids = itertools.count(1)
    refused = json.dumps({"code": 20003, "message": "Authenticate", "status": 401}).encode()

    async def create_message(request: web.Request) -> web.Response:
        body = await request.read()
        if request.headers.get("Authorization") != expected or request.match_info["sid"] != account_sid:
            return web.Response(body=refused, status=401, content_type="application/json")
        counts["messages"] += 1
        counts["bytes"] += len(body)
        sid = f"SM{next(sids):032d}"
        answer = {"sid": sid, "account_sid": account_sid, "status": "queued", "num_segments": "1",
                  "direction": "outbound-api", "error_code": None, "error_message": None}
        return web.Response(body=json.dumps(answer).encode(), status=201, content_type="application/json")

    app = web.Application()
    app.router.add_post(PATH, create_message)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, HOST, 0)
    await site.start()
    print(f"port {runner.addresses[0][1]}", flush=True)
    await answer_commands({"count": lambda: f"{counts['messages']} {counts['bytes']}"})
    await runner.cleanup()


class TwilioFakeProcess(ChildServer):
    module = "bench.twilio_fake"
    account_sid = ACCOUNT_SID
    auth_token = AUTH_TOKEN

    def __init__(self) -> None:
        super().__init__(self.account_sid, self.auth_token)

    async def __aenter__(self) -> TwilioFakeProcess:
        await super().__aenter__()
        return self

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"


if __name__ == "__main__":
    asyncio.run(serve(sys.argv[1], sys.argv[2]))
