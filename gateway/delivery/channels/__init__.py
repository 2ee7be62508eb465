"""Transports: one file each (SMTP, Maildir, Twilio SMS, SMS file, upstream webhook) behind the
one protocol of `base`, with vendor errors translated here into `delivery.errors`.

A transport only sends: it imports nothing from `store` or the outbox.
"""
