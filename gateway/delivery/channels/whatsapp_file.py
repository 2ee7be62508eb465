"""WhatsApp messages appended as JSON lines to a local file (`var/whatsapp.jsonl`), as the SMS
file does: the embedded default, so the quick start shows what would go.

Each line says how the message would go: as free text (`"kind": "text"`, within 24 hours of
the consumer's last WhatsApp message) or as the approved template (`"kind": "template"`, with
its Content SID and variables). The file stands in for WhatsApp and holds no message back: one
that Twilio would refuse (free text outside the window, no approved template registered) is
written with `"outside_window": true`, so a demo shows it and `templates check` says what to set.
"""

from __future__ import annotations

from gateway.delivery.channels.base import Message
from gateway.delivery.channels.sms_file import SMSFileTransport


class WhatsAppFileTransport(SMSFileTransport):
    def _record(self, message: Message) -> dict[str, object]:
        line = super()._record(message)
        if message.content_sid and not message.window_open:
            line.update(kind="template", content_sid=message.content_sid,
                        content_variables=message.content_variables)
        else:
            line.update(kind="text", outside_window=not message.window_open)
        return line
