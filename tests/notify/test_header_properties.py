"""Properties of what reaches e-mail headers: any title becomes one printable line
within the bound, only single addresses pass, and an e-mail built from any stored title
or file name can be composed and serialized."""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import getaddresses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reelwatch.config import load_settings
from reelwatch.database import Database
from reelwatch.db.models import User, Video
from reelwatch.failures import FailureCode, TaskFailure
from reelwatch.inputs import (
    MAX_TITLE_LENGTH,
    InvalidInput,
    clean_filename,
    clean_title,
    one_line,
    parse_address,
)
from reelwatch.notify import messages, outbox
from reelwatch.notify.dispatcher import Dispatcher

# Any text, control and format characters, line and paragraph separators included.
ANY_TEXT = st.text(st.characters(codec="utf-8"), max_size=300)
ATOM = st.text("abcdefghijklmnopqrstuvwxyz0123456789!#$%&'*+/=?^_`{|}~-", min_size=1, max_size=12)
LABEL = st.text("abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=12)
ADDRESSES = st.builds(
    lambda local, labels: f"{'.'.join(local)}@{'.'.join(labels)}",
    st.lists(ATOM, min_size=1, max_size=3),
    st.lists(LABEL, min_size=1, max_size=3),
)


def is_one_printable_line(text: str) -> bool:
    return text.isprintable() and text == text.strip() and "  " not in text


@given(ANY_TEXT)
def test_one_line_is_printable_and_idempotent(text: str) -> None:
    line = one_line(text)
    assert is_one_printable_line(line)
    assert one_line(line) == line


@given(ANY_TEXT, ANY_TEXT)
def test_a_title_is_one_printable_line_within_the_bound_or_refused(
    title: str, filename: str
) -> None:
    try:
        cleaned = clean_title(title, filename=filename)
    except InvalidInput:
        assert len(one_line(title)) > MAX_TITLE_LENGTH
        return
    assert cleaned and is_one_printable_line(cleaned) and len(cleaned) <= MAX_TITLE_LENGTH
    assert clean_title(cleaned, filename=filename) == cleaned
    name = clean_filename(filename)
    assert is_one_printable_line(name) and clean_filename(name) == name


@given(ADDRESSES)
def test_one_plain_address_is_accepted_as_it_is(address: str) -> None:
    assert parse_address(f"  {address} ") == address.lower()
    assert getaddresses([address]) == [("", address)]


@given(ADDRESSES, ADDRESSES, st.sampled_from([",", ", ", ";", "\r\n", "\n", "\r\nBcc: "]))
def test_lists_and_line_breaks_are_refused(first: str, second: str, between: str) -> None:
    with pytest.raises(InvalidInput):
        parse_address(f"{first}{between}{second}")
    with pytest.raises(InvalidInput):
        parse_address(f"Someone <{first}>")


@given(st.text(max_size=80))
def test_an_accepted_address_is_exactly_one_addr_spec(text: str) -> None:
    try:
        address = parse_address(text)
    except InvalidInput:
        return
    assert address.isascii() and address.isprintable() and " " not in address
    assert [(n, a.lower()) for n, a in getaddresses([text.strip()])] == [("", address)]
    email = EmailMessage()
    email["To"] = address
    assert bytes(email)


# Composing touches neither the database (never connected) nor the SMTP server.
DISPATCHER = Dispatcher(
    Database("sqlite:///never-opened.db"), load_settings(smtp_url="smtp://127.0.0.1:9"), owner="c"
)


@settings(max_examples=200)
@given(title=ANY_TEXT, filename=ANY_TEXT)
def test_any_stored_title_or_filename_makes_an_e_mail_that_builds(
    title: str, filename: str
) -> None:
    """Rows stored before titles were cleaned hold anything: what they produce is
    still sent, because the outbox keeps every subject on one line."""
    video = Video(id="v1", title=title, filename=filename, renditions=[], duration_s=61.0)
    user = User(id=1, email="owner@example.com")
    failure = TaskFailure(FailureCode.INPUT_INVALID, f"not a video: {filename}")
    for message in (
        messages.ready_email(video, user, run=1, public_url="http://localhost"),
        messages.failed_email(video, user, failure, run=1, public_url="http://localhost"),
        messages.failure_alert(video, user, failure, run=1, public_url="http://localhost"),
    ):
        email = DISPATCHER.compose(
            message.recipient if "@" in message.recipient else user.email,
            message.key,
            outbox.subject_line(message.subject),  # as enqueued
            message.body_text,
            message.body_html,
        )
        assert bytes(email)
