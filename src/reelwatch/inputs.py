"""What users send, made safe to store and to put in an e-mail header.

Titles and file names reach the Subject of e-mails, and addresses their To: one CR or
LF would make the message impossible to build. Every entry point (the upload API, the
web pages through it, the CLI, the status subscription, ``users add``) goes through
these functions, so the rules live in one place.
"""

from __future__ import annotations

import unicodedata
from email.errors import HeaderParseError
from email.headerregistry import Address

MAX_TITLE_LENGTH = 200
MAX_FILENAME_LENGTH = MAX_TITLE_LENGTH  # a name stands in for a missing title
MAX_ADDRESS_LENGTH = 254  # RFC 5321's limit on a forward path, less its brackets
MAX_SUFFIX_LENGTH = 16
# Legal in an addr-spec only quoted or as a domain literal; refused to keep it one address.
ADDRESS_SPECIALS = frozenset('"(),:;<>[\\]')


class InvalidInput(ValueError):
    """A value a user sent cannot be used; the message names the field and says why."""


def one_line(text: str) -> str:
    """``text`` as one line of printable characters: line breaks, tabs and other
    separators become spaces, invisible and control characters (NUL, bidi overrides,
    U+2028…) go, runs of white space collapse to one space."""
    visible = "".join(_visible(char) for char in text)
    return " ".join(visible.split())


def _visible(char: str) -> str:
    category = unicodedata.category(char)
    if category in ("Zl", "Zp") or char.isspace():
        return " "
    return "" if category.startswith("C") else char


def clean_filename(name: str) -> str:
    """An uploaded file's name as one line, shortened in the middle to keep its suffix."""
    name = one_line(name) or "upload"
    if len(name) <= MAX_FILENAME_LENGTH:
        return name
    stem, dot, suffix = name.rpartition(".")
    if not dot or not stem or len(suffix) > MAX_SUFFIX_LENGTH:
        return name[:MAX_FILENAME_LENGTH].rstrip()
    return f"{stem[: MAX_FILENAME_LENGTH - len(suffix) - 1].rstrip()}.{suffix}"


def clean_title(title: str | None, *, filename: str) -> str:
    """The title as one line; empty, it is the file name. A title longer than
    ``MAX_TITLE_LENGTH`` is refused rather than cut: the user chose those words."""
    cleaned = one_line(title or "")
    if len(cleaned) > MAX_TITLE_LENGTH:
        raise InvalidInput(
            f"title: at most {MAX_TITLE_LENGTH} characters, this one has {len(cleaned)}"
        )
    return cleaned or clean_filename(filename)


def parse_address(text: str) -> str:
    """Exactly one e-mail address (``name@example.com``), lower-cased; anything else
    (a list, a display name, a comment, spaces or control characters) is refused."""
    address = text.strip()
    refusal = InvalidInput(
        "email: must be one e-mail address such as name@example.com, "
        f"in ASCII, at most {MAX_ADDRESS_LENGTH} characters"
    )
    if not 3 <= len(address) <= MAX_ADDRESS_LENGTH or not _plain_ascii(address):
        raise refusal
    try:
        parsed = Address(addr_spec=address)
    except (ValueError, IndexError, HeaderParseError):
        raise refusal from None
    if parsed.addr_spec != address or not parsed.username or not parsed.domain:
        raise refusal
    return address.lower()


def _plain_ascii(address: str) -> bool:
    return address.isascii() and all(
        char.isprintable() and not char.isspace() and char not in ADDRESS_SPECIALS
        for char in address
    )


def shown(text: str) -> str:
    """``text`` for a terminal or a log line: control characters escaped (``\\r``)."""
    return "".join(char if char.isprintable() else repr(char)[1:-1] for char in text)
