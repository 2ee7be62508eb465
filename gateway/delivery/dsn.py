"""Reading an RFC 3464 delivery status notification: which recipients failed, and the remote words.

A DSN is `multipart/report; report-type=delivery-status` whose second part,
`message/delivery-status`, holds one block of per-message fields and one block per
recipient (`Final-Recipient`, `Action`, `Status`, `Diagnostic-Code`...). Only `Action: failed`
is a bounce; `delayed`, `delivered`, `relayed` and `expanded` are news, not an outcome.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import Message

STATUS = re.compile(r"^[245]\.\d{1,3}\.\d{1,3}$")


@dataclass(frozen=True)
class Failure:
    status: str                    # the enhanced status code, "5.1.1"
    diagnostic: str | None         # "smtp; 550 5.1.1 <...>: Recipient address rejected"
    remote_mta: str | None
    final_recipient: str | None    # the address as the reporting MTA saw it (personal data)


def failures(raw: bytes) -> list[Failure] | None:
    """The failed recipients of a DSN; None when `raw` is not a DSN (an auto-reply, spam)."""
    message = message_from_bytes(raw, policy=policy.compat32)
    report = _delivery_status(message)
    if report is None:
        return None
    blocks = report.get_payload()
    if not isinstance(blocks, list):
        return None
    found = []
    for block in blocks[1:]:  # the first block is about the message, the others about recipients
        if (block.get("Action") or "").strip().lower() != "failed":
            continue
        status = (block.get("Status") or "").strip().split(" ")[0]
        found.append(Failure(
            status=status if STATUS.match(status) else "5.0.0",
            diagnostic=_unfold(block.get("Diagnostic-Code")),
            remote_mta=_typed_value(block.get("Remote-MTA")),
            final_recipient=_typed_value(block.get("Final-Recipient")),
        ))
    return found


def _delivery_status(message: Message) -> Message | None:
    if message.get_content_type() == "message/delivery-status":
        return message
    if not message.is_multipart():
        return None
    for part in message.get_payload():
        if isinstance(part, Message) and (found := _delivery_status(part)) is not None:
            return found
    return None


def _unfold(value: str | None) -> str | None:
    return " ".join(value.split()) if value else None


def _typed_value(value: str | None) -> str | None:
    """`rfc822; maria@example.com` -> `maria@example.com`."""
    if not value:
        return None
    return _unfold(value.split(";", 1)[-1])
