"""A real Postfix for tests: a private instance from a temporary folder, on loopback ports.

    with PrivatePostfix(port, routes={"example.com": mx_port, "bounce.example.com": listener_port}) as mta:
        ...  # send to 127.0.0.1:port; mail for those domains goes to those ports

Debian's postfix package (`make install-mta`, unconfigured and never started) provides the
programs; this instance has its own main.cf, master.cf, queue and log, and no local
delivery: every domain it handles is routed to a test's server. Needs root, as Postfix does.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

MASTER_CF = """\
127.0.0.1:{port} inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


class PrivatePostfix:
    def __init__(self, port: int, routes: dict[str, int]) -> None:
        self.port = port
        self.routes = routes
        self.folder = Path(tempfile.mkdtemp(prefix="gateway-postfix-"))
        self.conf = self.folder / "conf"

    def _write(self) -> None:
        self.folder.chmod(0o755)  # the postfix user walks into queue/ and data/
        (self.folder / "queue").mkdir()
        data = self.folder / "data"
        data.mkdir()
        shutil.chown(data, "postfix")
        self.conf.mkdir()
        routes = ", ".join(f"{domain}=smtp:[127.0.0.1]:{port}" for domain, port in self.routes.items())
        (self.conf / "main.cf").write_text(f"""\
compatibility_level = 3.6
queue_directory = {self.folder}/queue
data_directory = {self.folder}/data
maillog_file = {self.folder}/maillog
maillog_file_prefixes = {self.folder}
mail_owner = postfix
setgid_group = postdrop
myhostname = mta.test
mydomain = mta.test
myorigin = mta.test
mydestination =
alias_maps =
alias_database =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
relay_domains = {", ".join(self.routes)}
transport_maps = inline:{{ {routes} }}
default_transport = error:5.4.4 this test MTA routes only its own domains
smtp_dns_support_level = disabled
biff = no
""")
        (self.conf / "master.cf").write_text(MASTER_CF.format(port=self.port))

    def _postfix(self, *command: str) -> None:
        done = subprocess.run(["postfix", "-c", str(self.conf), *command], capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            raise RuntimeError(f"postfix {' '.join(command)} failed: {done.stderr.strip()} {self.log()[-2000:]}")

    def log(self) -> str:
        path = self.folder / "maillog"
        return path.read_text(errors="replace") if path.exists() else ""

    def __enter__(self) -> PrivatePostfix:
        self._write()
        self._postfix("start")
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self._postfix("stop")
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)
