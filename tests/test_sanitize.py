"""Post bodies are sanitized once on save (SECURITY.md D1–D3, D5) and turned into plain text.

Cleaned HTML is judged the way a browser sees it: re-parsed with a standard HTML5 parser
(html5lib as vendored in bleach, used here without bleach's tokenizer changes) and with the
stdlib parser, then the elements, attributes and URLs of the result are checked.
"""
from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path
from unittest import mock

import pytest
from bleach._vendor import html5lib
from hypothesis import given, settings
from hypothesis import strategies as st

from intranet import sanitize
from intranet.sanitize import BodyTooLarge, clean_html, html_to_text

# OWASP XSS Filter Evasion cheat sheet, plus mutation-XSS payloads from DOMPurify, bleach
# and ammonia advisories (SECURITY.md R3, R6–R8): tests/data/xss_vectors.json, name -> payload.
VECTORS: dict[str, str] = json.loads((Path(__file__).parent / "data" / "xss_vectors.json").read_text())["vectors"]

RAW_TEXT = {"script", "style", "noscript", "title", "textarea", "xmp", "iframe", "noembed", "noframes", "plaintext"}
URL_ATTRIBUTES = {"href", "src", "action", "formaction", "background", "data", "poster", "srcset", "xlink:href"}
BAD_SCHEMES = ("javascript:", "vbscript:", "data:")
WEB_PROTOCOLS = {"http", "https", "mailto"}


def _elements(fragment: str) -> list[tuple[str, dict[str, str]]]:
    """Every element of ``fragment`` as (tag, attributes), per html5lib and html.parser."""
    found: list[tuple[str, dict[str, str]]] = []
    tree = html5lib.parseFragment(fragment, treebuilder="etree", namespaceHTMLElements=False)
    for element in tree.iter():
        if element is not tree:
            tag = "#comment" if element.tag is ET.Comment else element.tag
            found.append((tag, dict(element.attrib)))

    class Collector(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            found.append((tag, {name: value or "" for name, value in attrs}))

        def handle_comment(self, data: str) -> None:
            found.append(("#comment", {}))

    collector = Collector(convert_charrefs=True)
    collector.feed(fragment)
    collector.close()
    return found


def _scheme_of(url: str) -> str:
    """A parsed (already entity-decoded) URL, lowercased, without whitespace and controls."""
    return re.sub(r"[\x00-\x20\x7f]+", "", url).lower()


def _assert_safe(cleaned: str) -> None:
    for tag, attributes in _elements(cleaned):
        assert tag in sanitize.ALLOWED_TAGS, (tag, cleaned)
        for name, value in attributes.items():
            assert not name.lower().startswith("on"), (name, cleaned)
            if name.lower() in URL_ATTRIBUTES:
                assert not _scheme_of(value).startswith(BAD_SCHEMES), (value, cleaned)


@pytest.mark.parametrize("vector", VECTORS.values(), ids=VECTORS.keys())
def test_vector_leaves_no_disallowed_element(vector: str) -> None:
    """After cleaning, a browser-grade parse finds only allowlisted elements and no comment."""
    tags = {tag for tag, _ in _elements(clean_html(vector))}
    assert tags <= sanitize.ALLOWED_TAGS


@pytest.mark.parametrize("vector", VECTORS.values(), ids=VECTORS.keys())
def test_vector_leaves_no_event_handler(vector: str) -> None:
    """After cleaning, no element carries an on* attribute."""
    names = {name.lower() for _, attributes in _elements(clean_html(vector)) for name in attributes}
    assert not {name for name in names if name.startswith("on")}


@pytest.mark.parametrize("vector", VECTORS.values(), ids=VECTORS.keys())
def test_vector_leaves_no_script_url(vector: str) -> None:
    """After cleaning, no URL attribute uses javascript:, vbscript: or data:."""
    urls = [v for _, attrs in _elements(clean_html(vector)) for k, v in attrs.items() if k in URL_ATTRIBUTES]
    assert not [url for url in urls if _scheme_of(url).startswith(BAD_SCHEMES)]


@pytest.mark.parametrize("vector", VECTORS.values(), ids=VECTORS.keys())
def test_cleaning_a_vector_twice_changes_nothing(vector: str) -> None:
    """clean(clean(x)) == clean(x) on the corpus: a difference would smell of mutation XSS."""
    once = clean_html(vector)
    assert clean_html(once) == once


@pytest.mark.parametrize("body", ["<a><table><a>", "<p>a<b>b<table><p>c", "<ul><li>x<table><li>y", "<pre><div>",
                                  "<img title='&amp; \"x\"'>", "<h4><a>x <h4></style>y",
                                  '<a title=">" href="/x?a&lt;b">x</a>'])
def test_cleaning_settles_trees_that_do_not_round_trip(body: str) -> None:
    """Shapes fuzzing found (foster parenting, quotes, <pre> newlines) come out stable."""
    once = clean_html(body)
    assert clean_html(once) == once


# Hypothesis: HTML built from the pieces mXSS payloads are made of.
_TAGS = sorted(sanitize.ALLOWED_TAGS | RAW_TEXT | {"svg", "math", "mtext", "mglyph", "path", "div", "form",
                                                   "select", "option", "template", "object", "body"})
_ATTRIBUTE_NAMES = ["href", "src", "title", "alt", "width", "colspan", "onerror", "onclick", "style", "id",
                    "xlink:href", "rel"]
_NASTY = ["javascript:alert(1)", "JaVa&#x09;ScRiPt:alert(1)", "//evil.example/x", "/\\evil.example",
          "/attachments/1.png", "https://example.com/a?b=1&c=2", "mailto:a@example.com", "data:text/html,x",
          '"><img src=x onerror=alert(1)>', "</style><img src=x onerror=alert(1)>", "<!--", "-->", "]]>", "100"]
_text = st.text(alphabet="<>/&;#=!-\"'` \n\tabcx:\x00é", max_size=12)
_attribute = st.tuples(st.sampled_from(_ATTRIBUTE_NAMES), st.one_of(st.sampled_from(_NASTY), _text),
                       st.sampled_from(['"', "'", ""])).map(lambda a: f" {a[0]}={a[2]}{a[1]}{a[2]}")
_fragments = st.one_of(
    _text,
    st.sampled_from(_NASTY + ["<!-->", "<![CDATA[", "<?x", "</", "&amp;", "&#106", "&lt;p&gt;", "<br>", "<hr/>"]),
)


def _element(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.builds(
        lambda tag, attrs, inner, closed: f"<{tag}{''.join(attrs)}>{''.join(inner)}" + (f"</{tag}>" if closed else ""),
        st.sampled_from(_TAGS), st.lists(_attribute, max_size=3), st.lists(children, max_size=4), st.booleans(),
    )


_html = st.recursive(_fragments, _element, max_leaves=25).map(str)
_documents = st.lists(_html, min_size=1, max_size=5).map("".join)


@settings(max_examples=400, deadline=None, database=None)
@given(_documents)
def test_cleaning_generated_html_twice_changes_nothing(document: str) -> None:
    """clean(clean(x)) == clean(x) for generated HTML full of mXSS ingredients."""
    once = clean_html(document)
    assert clean_html(once) == once


@settings(max_examples=400, deadline=None, database=None)
@given(_documents)
def test_cleaned_generated_html_is_safe(document: str) -> None:
    """Generated HTML comes out with only allowlisted elements, no on* and no script URL."""
    _assert_safe(clean_html(document))


# D3: the allowlist that bleach's and ammonia's advisories were conditional on.
def test_allowlist_has_no_foreign_content() -> None:
    """svg and math, the entry to namespace-confusion mXSS, are not allowed."""
    assert not {"svg", "math"} & sanitize.ALLOWED_TAGS


def test_allowlist_has_no_raw_text_element() -> None:
    """No raw-text or RCDATA element (script, style, noscript, textarea, ...) is allowed."""
    assert not RAW_TEXT & sanitize.ALLOWED_TAGS


def test_allowlist_strips_comments() -> None:
    """Comments are always stripped, in the constant and in the output."""
    assert sanitize.STRIP_COMMENTS is True
    assert clean_html("<p>a<!-- b --></p>") == "<p>a</p>"


def test_allowlist_protocols_are_web_only() -> None:
    """Links may only use http, https and mailto; images only http and https."""
    assert sanitize.ALLOWED_PROTOCOLS <= WEB_PROTOCOLS
    assert sanitize.IMAGE_PROTOCOLS <= {"http", "https"}


def test_allowlist_has_no_style_or_event_attribute() -> None:
    """No element may keep style (there is no CSS sanitizer) or any on* attribute."""
    names = set().union(*sanitize.ALLOWED_ATTRIBUTES.values())
    assert "style" not in names and not {n for n in names if n.startswith("on")}
    assert clean_html('<p style="color:red" onclick="x">a</p>') == "<p>a</p>"


def test_allowlist_attributes_belong_to_allowed_tags() -> None:
    """Attributes are only listed for tags that are themselves allowed."""
    assert set(sanitize.ALLOWED_ATTRIBUTES) <= sanitize.ALLOWED_TAGS


@pytest.mark.parametrize("tag", ["svg", "math"])
def test_foreign_content_is_stripped_in_practice(tag: str) -> None:
    """svg and math are removed from real output (their children too, when not allowed)."""
    cleaned = clean_html(f"<{tag}><p>y</p><desc>d</desc></{tag}>")
    assert f"<{tag}" not in cleaned and "<desc" not in cleaned


@pytest.mark.parametrize("tag", sorted(RAW_TEXT))
def test_raw_text_element_is_stripped_in_practice(tag: str) -> None:
    """A raw-text element is removed from real output, whatever the constants say."""
    assert f"<{tag}" not in clean_html(f"<{tag}>x</{tag}><p>y</p>")


# Policies: disallowed tags stripped, links, images.
def test_disallowed_tag_is_stripped_and_its_text_kept() -> None:
    """A disallowed element disappears and its text stays, escaped."""
    assert clean_html("<div>Hello <marquee>team</marquee></div>") == "Hello team"


def test_comms_formatting_survives() -> None:
    """The formatting the editor produces passes through unchanged."""
    body = ("<h2>News</h2><p><strong>Bold</strong> <em>it</em> <u>u</u> <s>s</s> <code>c</code></p>"
            "<ul><li>a</li></ul><ol><li>b</li></ol><blockquote>q</blockquote><pre>x = 1</pre><hr>")
    assert clean_html(body) == body


def test_link_gets_noopener_noreferrer() -> None:
    """Every kept link gets rel="noopener noreferrer"."""
    cleaned = clean_html('<a href="https://example.com/">x</a>')
    assert cleaned == '<a href="https://example.com/" rel="noopener noreferrer">x</a>'


def test_link_rel_given_by_author_is_replaced() -> None:
    """An author's rel is replaced, so rel="opener" cannot come back."""
    assert clean_html('<a href="/posts/1" rel="opener">x</a>') == '<a href="/posts/1" rel="noopener noreferrer">x</a>'


@pytest.mark.parametrize("href", ["//evil.example/x", " //evil.example", "/\\evil.example", "\\\\evil.example",
                                  "/\t/evil.example", "&#47;&#47;evil.example"])
def test_protocol_relative_link_is_dropped(href: str) -> None:
    """A protocol-relative href (any spelling a browser accepts) is removed, the text kept."""
    assert clean_html(f'<a href="{href}">x</a>') == "<a>x</a>"


@pytest.mark.parametrize("href", ["https://example.com/a?b=1&amp;c=2", "http://example.com", "mailto:comms@example.com",
                                  "/posts/3", "#section"])
def test_web_and_local_links_are_kept(href: str) -> None:
    """http, https, mailto, site-relative and fragment links are kept as written."""
    assert f'href="{href}"' in clean_html(f'<a href="{href}">x</a>')


@pytest.mark.parametrize("src", ["/attachments/7/photo.png", "https://cdn.example.com/a.png"])
def test_image_from_beacon_or_https_is_kept(src: str) -> None:
    """An image from Beacon's own /... URLs or from http(s) keeps its src."""
    assert clean_html(f'<img src="{src}" alt="a">') == f'<img src="{src}" alt="a">'


@pytest.mark.parametrize("src", ["data:image/png;base64,iVBORw0KGgo=", "//evil.example/a.png", "photo.png",
                                 "mailto:a@example.com", "javascript:alert(1)"])
def test_image_from_elsewhere_loses_its_src(src: str) -> None:
    """Any other image source (data:, protocol-relative, bare relative, mailto:) is removed."""
    assert clean_html(f'<img src="{src}" alt="a">') == '<img alt="a">'


def test_image_dimension_must_be_a_number() -> None:
    """width and height are kept only when they are plain numbers."""
    assert clean_html('<img src="/a.png" width="120" height="50%">') == '<img src="/a.png" width="120">'


# D5: size and shape limits, checked by a linear scan before any parsing (the parser is what
# grows worse than linearly on hostile input). How long a rejection takes is measured in bench/.
def _rejected_before_parsing(body: str) -> BodyTooLarge:
    with mock.patch.object(sanitize, "_clean_once", side_effect=AssertionError("the body reached the parser")):
        with pytest.raises(BodyTooLarge) as caught:
            clean_html(body)
    return caught.value


def test_oversized_body_is_rejected_before_parsing() -> None:
    """A 500 KB body raises BodyTooLarge without being parsed."""
    error = _rejected_before_parsing("<p>" + "x" * 500_000 + "</p>")
    assert (error.what, error.limit) == ("bytes", sanitize.MAX_BODY_BYTES)


def test_size_limit_counts_utf8_bytes() -> None:
    """The limit is in UTF-8 bytes, so a body of two-byte letters fails at half the characters."""
    assert _rejected_before_parsing("é" * (sanitize.MAX_BODY_BYTES // 2 + 1)).what == "bytes"


def test_body_at_the_size_limit_is_cleaned() -> None:
    """A body of exactly MAX_BODY_BYTES is accepted."""
    body = "<p>" + "x" * (sanitize.MAX_BODY_BYTES - 7) + "</p>"
    assert clean_html(body) == body


def test_deep_nesting_is_rejected_before_parsing() -> None:
    """20 000 nested <div> (fitting the byte limit or not) raise BodyTooLarge without being parsed."""
    assert _rejected_before_parsing("<div>" * 20_000).what == "bytes"
    assert _rejected_before_parsing("<ul><li>" * 5_000).what in {"tags", "levels of nesting"}


def test_nesting_beyond_the_limit_is_rejected() -> None:
    """Nesting deeper than MAX_NESTING is refused, even in a small body."""
    assert _rejected_before_parsing("<blockquote>" * (sanitize.MAX_NESTING + 1)).what == "levels of nesting"


def test_nesting_that_closes_is_accepted() -> None:
    """Many closed elements in a row are not nesting: 1 000 paragraphs pass."""
    body = "<p><b>x</b></p>" * 1_000
    assert clean_html(body) == body


def test_too_many_tags_are_rejected() -> None:
    """More than MAX_BODY_TAGS tags (html5lib is quadratic in siblings) is refused."""
    assert _rejected_before_parsing("<table>" + "<tr><td>x" * sanitize.MAX_BODY_TAGS).what == "tags"


def test_attribute_bomb_is_rejected() -> None:
    """A tag with thousands of attributes, even hidden behind a stray quote, is refused."""
    names = " ".join(f"a{i}" for i in range(3_000))
    assert _rejected_before_parsing(f"<a {names}>").what == "attributes on one element"
    assert _rejected_before_parsing(f'<!-- <a title=" --><a x"=1 {names}>"').what == "attributes on one element"


def test_too_large_message_says_what_to_do() -> None:
    """The error names the limit and how to get under it."""
    message = str(_rejected_before_parsing("<i>" * (sanitize.MAX_NESTING + 1)))
    assert f"the limit is {sanitize.MAX_NESTING}" in message and "Shorten" in message


# Plain text for digests and search.
def test_text_separates_paragraphs_with_a_blank_line() -> None:
    """Blocks become paragraphs separated by one blank line."""
    assert html_to_text("<h2>Title</h2><p>One</p><p>Two</p>") == "Title\n\nOne\n\nTwo"


def test_text_collapses_whitespace() -> None:
    """Runs of spaces, newlines and &nbsp; inside text become one space."""
    assert html_to_text("<p>  a \n\n  b&nbsp;&nbsp;c  </p>") == "a b c"


def test_text_keeps_line_breaks() -> None:
    """<br> starts a new line within a paragraph."""
    assert html_to_text("<p>a<br>b</p>") == "a\nb"


def test_text_writes_link_urls() -> None:
    """A link's URL follows its text, unless the text already shows it."""
    text = html_to_text('<p><a href="https://x.example/a">the plan</a> or '
                        '<a href="https://y.example">https://y.example</a></p>')
    assert text == "the plan (https://x.example/a) or https://y.example"


def test_text_lists_items_on_their_own_lines() -> None:
    """Bullets and numbers mark list items, nested lists are indented."""
    assert html_to_text("<ul><li>a</li><li>b<ol><li>c</li></ol></li></ul>") == "- a\n- b\n  1. c"


def test_text_decodes_entities() -> None:
    """Entities become characters: the result is text, not HTML."""
    assert html_to_text("<p>R&amp;D &lt;team&gt; caf&eacute;</p>") == "R&D <team> café"


def test_text_keeps_preformatted_whitespace() -> None:
    """Whitespace inside <pre> is kept as written."""
    assert html_to_text("<pre>a  = 1\n  b</pre>") == "a  = 1\n  b"


def test_text_ignores_script_and_style_content() -> None:
    """Script and style contents never reach the text, even in unsanitized HTML."""
    assert html_to_text("<style>p{}</style><script>x()</script><p>hi</p>") == "hi"


def test_text_of_a_table_separates_cells() -> None:
    """Table rows become lines and cells are separated by a bar."""
    assert html_to_text("<table><tr><th>A</th><th>B</th></tr><tr><td>1</td><td>2</td></tr></table>") == "A | B\n1 | 2"
