"""Message text on the pages: escaped, safe links only, the search's words marked."""

from __future__ import annotations

from query_api.web.text import message_html, marked_words


def test_only_http_https_and_xmpp_addresses_become_links_with_a_safe_rel():
    html = message_html("see https://example.org/a?b=1&c=2. and xmpp:dev@conference.example.org?join or javascript:alert(1)")
    assert html.count("<a ") == 2
    assert '<a href="https://example.org/a?b=1&amp;c=2" rel="noopener noreferrer nofollow" target="_blank">' in html
    assert "</a>. and" in html  # the full stop is not part of the address
    assert 'href="xmpp:dev@conference.example.org?join"' in html
    assert "javascript:alert(1)" in html and 'href="javascript' not in html


def test_everything_else_is_escaped_and_nothing_breaks_out_of_an_attribute():
    html = message_html('<img src=x onerror=alert(1)> http://x.example/"onmouseover="alert(1) <b>')
    assert "<img" not in html and "&lt;img" in html and "<b>" not in html
    assert 'href="http://x.example/"' in html and "onmouseover=" not in html.split("</a>")[0].split(">", 1)[0]


def test_brackets_and_bare_schemes():
    html = message_html("(https://en.wikipedia.org/wiki/Foo_(bar)) and http:// alone")
    assert 'href="https://en.wikipedia.org/wiki/Foo_(bar)"' in html and "</a>)" in html
    assert html.count("<a ") == 1


def test_marked_words_from_a_snippet_are_marked_in_the_text_but_not_inside_links():
    words = marked_words("the <mark>Deploy</mark> of &lt;b&gt; <mark>R&amp;D</mark> <mark>deploy</mark>")
    assert words == ["Deploy", "R&D", "deploy"]
    html = message_html("deploy R&D at https://deploy.example.org", words)
    assert html.startswith("<mark>deploy</mark> <mark>R&amp;D</mark> at <a ")
    assert 'href="https://deploy.example.org"' in html and "<mark>" not in html.split("<a ", 1)[1]


def test_a_long_run_of_closing_brackets_after_an_address_is_rendered_in_linear_time():
    """Trimming unbalanced ``)`` from an address counted the brackets of the whole address again for each
    one trimmed: quadratic, so one message of ``http://a`` and 100,000 ``)`` (anyone in a room may post it)
    took seconds of CPU (minutes at a server's stanza limit) each time its day's page was shown, holding a
    server thread and the interpreter lock. Now the brackets are counted once. The work is counted in
    characters read from the message (slices and counts), not in seconds, so load cannot decide the outcome."""
    read = 0

    class Message(str):
        def __getitem__(self, key):
            nonlocal read
            piece = str.__getitem__(self, key)
            read += len(piece)
            return piece

        def count(self, sub, start=None, end=None):
            nonlocal read
            start, end, _ = slice(start, end).indices(len(self))
            read += end - start
            return str.count(self, sub, start, end)

    text = Message("see http://a" + ")" * 100_000)
    html = message_html(text)
    assert 'href="http://a"' in html and html.endswith("</a>" + ")" * 100_000)
    assert read < 10 * len(text)  # a few times the message now; the address again per ")" before (~10^10)


def test_a_long_word_to_mark_is_not_searched_for():
    """The room page marks the words its address names (``hl``, from a search hit's link), taken as they came:
    a word of 25,000 characters against a long message cost seconds of CPU per view (quadratic), and anyone
    can send such an address. A word longer than any a snippet marks is now not marked at all, even where the
    message holds it."""
    html = message_html("a" * 50_000, ["a" * 25_000, "a"])
    assert html.count("<mark>") == 50_000  # the short word is marked, the long one is not searched for
