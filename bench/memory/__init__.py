"""`python -m bench.memory`: the daemon's resident memory with a big database and a big backlog.

    python -m bench.memory                       # 1,000,000 protocols, 100,000 queued emails, SQLite
    python -m bench.memory --pg postgresql+asyncpg://postgres@127.0.0.1:5432/postgres   # and PostgreSQL
    python -m bench.memory --protocols 200000 --queued 20000
    python -m bench.memory --smoke               # 2,000 protocols, 200 queued: proves it runs

Target: peak RSS under 200 MB (read strictly: 200 × 10⁶ bytes, 190.7 MiB) for the daemon as a
user runs it, on a database a busy service reaches (a million protocols) with a backlog an
SMTP outage leaves (a hundred thousand queued emails).

The store is filled straight through the driver, as bench/sweeps.py does (its protocols,
moved to today: a year and a half of br-sac protocols, one event and two sent notifications
each). The last `--queued` protocols' confirmation emails are queued instead, rendered from
the real `protocol_opened` templates (rendered once and varied by number, subject and name:
the service's sizes and shape), and parked in the future so that the phases stay apart.

Then `protocol-gateway run` starts in a subprocess with SMTP to the counting sink of
bench/sink.py, SMS to a file and one operations address, and its RSS is sampled every 100 ms
(psutil, or /proc/PID/status without it) through these phases:

1. start: until /healthz answers;
2. start-up sweeps: every schedule runs once at start (README: a run after downtime catches
   up), over the whole table; until each has logged `sweep_done`;
3. the sweeps' messages: until nothing due is left in the outbox;
4. idle: a few seconds at rest: "RSS at idle after start";
5. drain: the peak is reset (`/proc/PID/clear_refs`), the backlog is made due, and the
   dispatcher sends it; VmHWM at the end is the peak of the drain alone.

Reported: the RSS at each step, the peaks, the drain's time and rate (from the release to
the last `sent_at` recorded), and a bare interpreter with the gateway imported for reference.
The run checks itself: every sweep done, every queued email recorded as sent, the sink got
every email recorded as sent, nothing due left, no error logged, a clean exit on SIGTERM.
A phase longer than `--settle-timeout` or `--drain-timeout` is cut short and the report says
so; a drain cut short gives its rate so far and the time the whole backlog would take.

Progress goes to stderr; the tables to stdout and bench/results/memory-<date>-<time>.md, the
figures (RSS samples thinned to KEPT_SAMPLES) to the .json beside it.
"""

from datetime import datetime, timezone
from pathlib import Path

UTC = timezone.utc
TARGET_BYTES = 200 * 10**6  # "under 200 MB"
SAMPLE_EVERY = 0.1  # seconds between RSS samples
KEPT_SAMPLES = 1000  # at most this many samples per database go into the JSON (evenly thinned)
IDLE_SECONDS = 5.0  # at rest after the start-up sweeps and their messages
PROGRESS_EVERY = 5.0  # seconds between progress lines while waiting on the daemon
POLL_EVERY = 0.5  # seconds between looks at the outbox
CHUNK = 20_000  # protocols per insert batch
PARKED = datetime(2100, 1, 1, tzinfo=UTC)  # the backlog waits here until the drain phase releases it
OPERATIONS = "operacoes@example.com"
START_TIMEOUT = 180.0  # seconds for /healthz
PHASE_TIMEOUT = 3600.0  # seconds for any other phase
STOP_TIMEOUT = 60.0  # seconds for the daemon to exit after SIGTERM
ACTIVE = ("queued", "sending", "unknown")
ROOT = Path(__file__).resolve().parent.parent.parent  # the checkout: bench/memory/ is two levels down
SMOKE = {"protocols": 2000, "queued": 200}
SMOKE_IDLE = 1.0
