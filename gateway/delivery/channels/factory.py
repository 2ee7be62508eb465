"""Build the email, SMS and WhatsApp transports the settings ask for.

Each transport is imported only when chosen: the Twilio SDK is slow to import and a
file-only setup never needs it.
"""

from __future__ import annotations

from gateway.config import Settings
from gateway.delivery.channels.base import Transport


def build_email_transport(settings: Settings) -> Transport:
    email = settings.email
    if email.transport == "smtp":
        from gateway.delivery.channels.smtp import SMTPTransport

        return SMTPTransport(email.relays[0], email.sender)
    from gateway.delivery.channels.maildir import MaildirTransport

    return MaildirTransport(settings.path(email.maildir), email.sender)


def build_sms_transport(settings: Settings) -> Transport:
    sms = settings.sms
    if sms.transport == "twilio":
        from gateway.delivery.channels.twilio import TwilioTransport

        return TwilioTransport(sms.accounts[0])
    from gateway.delivery.channels.sms_file import SMSFileTransport

    return SMSFileTransport(settings.path(sms.file))


def build_whatsapp_transport(settings: Settings) -> Transport:
    whatsapp = settings.whatsapp
    if whatsapp.transport == "twilio":
        from gateway.delivery.channels.twilio import TwilioTransport

        return TwilioTransport(settings.whatsapp_accounts[0], channel="whatsapp")
    from gateway.delivery.channels.whatsapp_file import WhatsAppFileTransport

    return WhatsAppFileTransport(settings.path(whatsapp.file))
