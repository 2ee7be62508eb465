"""Header fields for the emails we send: folded, and encoded where they must be, by RFC 5322 and 2047.

What keeps a legal notice whole on its way to the consumer:
- no line over 998 octets (a server answers `500 Line too long` and the notice is lost), and
  none over 78 where the text allows; a fold goes before whitespace the text already has or
  between two encoded words, never inside an address or an encoded word;
- encoded words for whatever is not plain printable ASCII, and for any word a reader could
  take for an encoded word (`=?utf-8?q?...?=` typed by a consumer), or mail clients would
  decode it into other text; each encoded word within 75 characters, whole characters only;
- whitespace other than one space between two words travels inside encoded words: readers
  drop it at the ends of a value and between two encoded words, and some fold any run of it
  into one space (postal-mime) or turn a folded tab into a space (mailparser).

Python's `email` package does most of this, at about a millisecond a message; its address
parser (3.11) also keeps the whitespace between two encoded words of a name, which readers
following RFC 2047 drop. So an encoded run is split where the text has a space whenever one
fits: both kinds of reader then see the same words.
"""

from __future__ import annotations

import binascii
import re
from email.errors import HeaderParseError, NonPrintableDefect
from email.policy import default as default_policy
from functools import lru_cache

from gateway.delivery.errors import PermanentDeliveryError

LINE = 78           # octets: RFC 5322's recommended line length
MAX_LINE = 998      # octets: RFC 5322's limit, CRLF excluded
WORD_MAX = 75       # characters in one encoded word (RFC 2047 section 2)
_Q_START, _B_START, _END = "=?utf-8?q?", "=?utf-8?b?", "?="
_OVERHEAD = len(_Q_START) + len(_END)
_ROOM_MIN = _OVERHEAD + 12  # the longest character (4 UTF-8 octets, q-encoded) always fits

# Every line break str.splitlines() knows: a value holding one could start a header of its own.
_LINE_BREAK = re.compile("[\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")
_GAPS = re.compile(r"([ \t]+)")
_TEXT_WORD = re.compile(r"[!-~]+")                          # printable ASCII (unstructured text)
_ATOM = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+")      # atext (names in addresses)
_QUOTABLE = re.compile(r"[ -~\t]*")
_SIMPLE_TEXT = re.compile(r"[!-~]+(?: [!-~]+)*")             # words and single spaces, as they are
_QUOTED_FOLD = re.compile(r"(?<=[^ \t]) (?=[^ \t])")          # one space between two words
_BARE_ADDRESS = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
                           r"@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*")
# q-encoding keeps only what RFC 2047 (5.3) allows in a name, so one table serves every header.
_Q_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!*+-/")
_Q_OCTET = [chr(b) if b in _Q_SAFE else "_" if b == 0x20 else f"={b:02X}" for b in range(256)]


def check_single_line(name: str, value: str) -> None:
    """Refuse a value that would end its header line early: it could write headers of its own."""
    if _LINE_BREAK.search(value):
        raise PermanentDeliveryError(f"header {name} contains a line break")


def unstructured(name: str, value: str) -> str:
    """`Name: value` (a Subject), folded with CRLF, without the final CRLF."""
    check_single_line(name, value)
    if len(name) + 2 + len(value) <= LINE and _SIMPLE_TEXT.fullmatch(value) and not _looks_encoded(value):
        return f"{name}: {value}"
    lines = _Lines(name)
    if value:
        _add_words(lines, *_plan(value, _TEXT_WORD, lines.room(" ")))
    return lines.text()


def mailbox(name: str, value: str) -> str | None:
    """`Name: display name <address>` folded, or None when the value is beyond this writer.

    The value means what Python's `email` package reads in it (the slow path reads it the same
    way). None for anything but one address with an ASCII addr-spec: a group, a list, a
    malformed value, an international address (that needs SMTPUTF8 and the `email` package).
    """
    check_single_line(name, value)
    if _BARE_ADDRESS.fullmatch(value):
        display, address = "", value
    else:
        parsed = _parse_mailbox(value)
        if parsed is None:
            return None
        display, address = parsed
    lines = _Lines(name)
    if display:
        _add_phrase(lines, display)
        lines.add(" ", f"<{address}>")
    else:
        lines.add("", address)
    return lines.text()


@lru_cache(maxsize=256)  # the sender and the reply-to address are parsed once, not per message
def _parse_mailbox(value: str) -> tuple[str, str] | None:
    try:
        header = default_policy.header_factory("To", value)
    except (HeaderParseError, ValueError, IndexError, TypeError):
        return None
    # A control character in a name is read as it is, with a defect noted: it goes encoded.
    if any(not isinstance(d, NonPrintableDefect) for d in header.defects):
        return None
    if len(header.groups) != 1 or header.groups[0].display_name is not None:
        return None
    [address] = header.addresses
    spec = address.addr_spec
    if not spec or not spec.isascii() or not spec.isprintable() or "@" not in spec:
        return None
    return address.display_name or "", spec


class _Lines:
    """A header field being folded: each token goes on the current line if it fits, else on the next."""

    __slots__ = ("name", "done", "line", "bare")

    def __init__(self, name: str) -> None:
        self.name = name
        self.done: list[str] = []
        self.line = name + ":"
        self.bare = True  # nothing after the colon yet; a fold there would change the value

    def room(self, gap: str) -> int:
        return LINE - len(self.line) - (1 if self.bare else len(gap))

    def add(self, gap: str, token: str) -> None:
        """Append `token` after `gap`, the whitespace before it (kept, or dropped between encoded words)."""
        if self.bare:
            self.line += " " + token
            self.bare = False
        elif len(self.line) + len(gap) + len(token) <= LINE:
            self.line += gap + token
        else:
            self.done.append(self.line)
            self.line = gap + token  # the fold: CRLF goes before the gap, so unfolding restores it

    def text(self) -> str:
        self.done.append(self.line)
        if any(len(line) > MAX_LINE for line in self.done):
            raise PermanentDeliveryError(f"header {self.name} cannot be written in lines of {MAX_LINE} octets")
        return "\r\n".join(self.done)


def _looks_encoded(text: str) -> bool:
    return "=?" in text or "?=" in text


def _plan(text: str, word: re.Pattern[str], first_room: int) -> tuple[list[str], list[str], list[bool]]:
    """Split `text` into words and the gaps before them, and say which words may go as they are."""
    parts = _GAPS.split(text)
    words, gaps = parts[0::2], ["", *parts[1::2]]
    plain = [bool(w) and word.fullmatch(w) is not None and not _looks_encoded(w)
             and len(g) + len(w) <= (first_room if i == 0 else LINE)
             for i, (g, w) in enumerate(zip(gaps, words))]
    for i in range(1, len(words)):
        # Any other gap (at an end of the value, a tab, two spaces) travels inside encoded words.
        if not (words[i - 1] and words[i] and gaps[i] == " "):
            plain[i - 1] = plain[i] = False
    return words, gaps, plain


def _add_words(lines: _Lines, words: list[str], gaps: list[str], plain: list[bool]) -> None:
    i = 0
    while i < len(words):
        if plain[i]:
            lines.add(gaps[i], words[i])
            i += 1
            continue
        j = i
        while j + 1 < len(words) and not plain[j + 1]:
            j += 1
        run = words[i] + "".join(gaps[k] + words[k] for k in range(i + 1, j + 1))
        _add_encoded(lines, gaps[i], run)
        i = j + 1


def _add_phrase(lines: _Lines, display: str) -> None:
    """A display name: atoms as they are, else one quoted string (ASCII), else atoms and encoded words."""
    words, gaps, plain = _plan(display, _ATOM, lines.room(" "))
    if not all(plain):
        quoted = _quoted(display, lines.room(" "))
        if quoted is not None:
            words, gaps, plain = quoted
    _add_words(lines, words, gaps, plain)


def _quoted(display: str, first_room: int) -> tuple[list[str], list[str], list[bool]] | None:
    """An ASCII name as one quoted string, folded only at a single space; None if it does not fit lines.

    A quoted string keeps its whitespace exactly where encoded words would not (Python reads
    each run of whitespace in an encoded name as one space).
    """
    if not _QUOTABLE.fullmatch(display) or _looks_encoded(display):
        return None
    words = _QUOTED_FOLD.split('"' + display.replace("\\", "\\\\").replace('"', '\\"') + '"')
    if len(words[0]) > first_room or any(len(w) >= LINE for w in words[1:]):
        return None
    return words, ["", *[" "] * (len(words) - 1)], [True] * len(words)


def _add_encoded(lines: _Lines, gap: str, text: str) -> None:
    """`text` as encoded words of at most 75 characters, each fitting its line, split at a space if one fits."""
    try:
        octets = [c.encode() for c in text]
    except UnicodeEncodeError as exc:  # a lone surrogate: no charset can carry it
        raise PermanentDeliveryError(f"header {lines.name} holds text that cannot be encoded: {exc}") from exc
    q_units = ["".join([_Q_OCTET[b] for b in o]) if len(o) > 1 else _Q_OCTET[o[0]] for o in octets]
    size = sum(len(o) for o in octets)
    b_encoding = (size + 2) // 3 * 4 < sum(len(q) for q in q_units)  # the shorter one, as Python's email does
    units, start_marker = (octets, _B_START) if b_encoding else (q_units, _Q_START)
    start, end_of_text = 0, len(text)
    while start < end_of_text:
        room = lines.room(gap)
        budget = min(WORD_MAX, room if room >= _ROOM_MIN else LINE - len(gap))
        capacity = (budget - _OVERHEAD) // 4 * 3 if b_encoding else budget - _OVERHEAD
        end, used, space = start, 0, None
        while end < end_of_text and used + len(units[end]) <= capacity:
            if end > start and text[end] in " \t":
                space = end
            used += len(units[end])
            end += 1
        if end < end_of_text and space is not None:
            end = space  # the space opens the next word: no reader can lose it or see one that is not there
        if b_encoding:
            payload = binascii.b2a_base64(b"".join(units[start:end]), newline=False).decode()
        else:
            payload = "".join(units[start:end])
        lines.add(gap, start_marker + payload + _END)
        gap, start = " ", end
