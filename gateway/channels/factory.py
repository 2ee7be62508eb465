"""Build the email and SMS transports the settings ask for.

Each transport is imported only when chosen: the Twilio SDK is slow to import and a
file-only setup never needs it.
"""

from __future__ import annotations

from ..config import Settings
from .base import Transport


def build_email_transport(settings: Settings) -> Transport:
    email = settings.email
    if email.transport == "smtp":
        from .smtp import SMTPTransport

        return SMTPTransport(email.smtp, email.sender)
    from .maildir import MaildirTransport

    return MaildirTransport(settings.path(email.maildir), email.sender)


def build_sms_transport(settings: Settings) -> Transport:
    sms = settings.sms
    if sms.transport == "twilio":
        from .twilio import TwilioTransport

        return TwilioTransport(sms.twilio)
    from .sms_file import SMSFileTransport

    return SMSFileTransport(settings.path(sms.file))
