"""Why a notification needs attention, in words an operator can act on (the record keeps the provider's own)."""

from __future__ import annotations

from gateway.delivery.admin import OutboxItem

# Provider codes seen most, by what to do about them.
CODES = {
    "21211": "The phone number is not valid: correct the consumer's number upstream.",
    "21610": "The consumer replied STOP to our SMS number: they receive no SMS until they text START.",
    "21408": "SMS to this region is not enabled in the Twilio account.",
    "21614": "The number cannot receive SMS (a landline?): use email.",
    "30003": "The phone was unreachable (switched off or out of coverage).",
    "30005": "The phone number does not exist according to the carrier.",
    "30006": "The carrier says it cannot deliver to this number (a landline?).",
    "30007": "The carrier filtered the message as spam.",
    "63016": "WhatsApp: free text outside the 24-hour window; an approved template is needed.",
    "63003": "This number has no WhatsApp: the message went on by the next channel of its chain.",
    "63024": "This number has no WhatsApp: the message went on by the next channel of its chain.",
    "no_template": "WhatsApp: the consumer has not written in 24 hours and this message has no approved "
                   "template for its locale: add its content_sid to template.toml ([whatsapp]).",
}
STATUSES = {
    "dead": "Gave up after dispatch.give_up_after of retries: retry once the cause is fixed.",
    "failed": "The provider refused it for good.",
    "undelivered": "The provider accepted it but could not deliver it.",
    "unknown": "The provider did not answer in time: it may have been sent; it will be sent again.",
}


def explain(item: OutboxItem) -> str:
    if item.error_code and item.error_code in CODES:
        return CODES[item.error_code]
    if item.error_code and item.error_code.isdigit() and len(item.error_code) == 3:
        kind = "a temporary" if item.error_code.startswith("4") else "a permanent"
        return f"The mail server gave {kind} refusal ({item.error_code})."
    return STATUSES.get(item.status, "")
