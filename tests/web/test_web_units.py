"""The web layer's small parts on their own: passwords, graphs, keys, redirects."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from reelwatch.accounts import hash_password, password_matches
from reelwatch.api.session import load_secret_key
from reelwatch.web.deps import safe_next
from reelwatch.web.graph import Node, render_svg, to_dot

pytestmark = pytest.mark.web


def test_passwords_are_salted_scrypt_hashes() -> None:
    first, second = hash_password("correct horse"), hash_password("correct horse")
    assert first != second and first.startswith("scrypt$")
    assert password_matches("correct horse", first) and password_matches("correct horse", second)
    assert not password_matches("correct horsE", first)
    assert not password_matches("correct horse", "not a hash")


def test_graph_labels_cannot_break_out_of_dot_or_svg() -> None:
    hostile = 'x" -> evil [label="\\N <script>'
    nodes = [
        Node("probe", ("probe", hostile), (), "#ffffff"),
        Node("b", ("b",), ("probe",), "#f00000"),
    ]
    # Quotes and backslashes escaped: the text stays one label of one node.
    assert 'label="probe\\nx\\" -> evil [label=\\"\\\\N <script>"' in to_dot(nodes)
    svg = render_svg(nodes)
    assert svg is not None and svg.startswith("<svg")
    assert svg.count('class="node"') == 2  # the label did not make a node of its own
    assert "x&quot; &#45;&gt; evil [label=&quot;\\N &lt;script&gt;" in svg


def test_the_session_key_is_made_once_and_kept_private(tmp_path: Path) -> None:
    path = tmp_path / "home" / "web-session.key"
    key = load_secret_key(path)
    assert len(key) >= 48 and load_secret_key(path) == key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert list(path.parent.iterdir()) == [path]  # no temporary file left behind


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/videos/abc?x=1", "/videos/abc?x=1"),
        ("//evil.example/x", "/videos"),
        ("/\\evil.example", "/videos"),
        ("https://evil.example", "/videos"),
        (None, "/videos"),
    ],
)
def test_redirects_after_sign_in_stay_on_this_site(target: str | None, expected: str) -> None:
    assert safe_next(target) == expected
