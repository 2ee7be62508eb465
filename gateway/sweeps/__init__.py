"""Work driven by time: schedule files, the APScheduler wiring, the sweep runner and its
context, deadline reminders and overdue alerts, the operations digest, retention notices and
expiry, quiet hours. Every sweep is a function of `at`.

May import: `protocols`, `rendering`, `delivery`, `store`, the top-level modules. Never `api`
or `web`.
"""
