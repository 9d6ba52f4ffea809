"""Post bodies: the one place rich HTML is cleaned, and turned into plain text.

This is the only module that imports bleach, so moving to another sanitizer (nh3) is a
one-file change. Bodies are cleaned **once, on save**: the stored HTML is what templates mark
``|safe``, and the plain-text version feeds email digests and search.

The allowlist avoids every precondition of bleach's and ammonia's mutation-XSS and ReDoS
advisories (CVE-2020-6802, CVE-2020-6816, CVE-2020-6817, CVE-2021-23980, RUSTSEC-2021-0074,
RUSTSEC-2025-0071): no ``svg`` or ``math``, no raw-text element, no ``style`` attribute,
comments always stripped. ``tests/test_sanitize.py`` pins these constants. A disallowed
element is removed but its text stays, escaped (``<script>x</script>`` becomes ``x``).

URL policy:

- Links (``a[href]``) may use ``http``, ``https`` and ``mailto``, or be relative to Beacon
  (``/posts/3``, ``#section``). Protocol-relative URLs (``//host/x``, and the ``/\\host``,
  ``\\\\host`` spellings browsers read the same way) are dropped: they leave the intranet
  while looking like local links.
- Images (``img[src]``) may be absolute ``http``/``https`` URLs or Beacon's own attachment
  URLs, which start with a single ``/``. Everything else (``data:``, ``mailto:``, bare relative
  paths, protocol-relative URLs) is dropped.
- Every kept link gets ``rel="noopener noreferrer"``, replacing any ``rel`` given.

Size policy: bleach (html5lib in pure Python) is slow, and some shapes of HTML are
quadratic for it. :func:`clean_html` therefore rejects, with :class:`BodyTooLarge` and before
parsing, a body over :data:`MAX_BODY_BYTES`, with more than :data:`MAX_BODY_TAGS` tags, nested
deeper than :data:`MAX_NESTING` or with more than :data:`MAX_ATTRIBUTES` attributes on one
tag. Within those limits the slowest hostile body we found (5 000 unclosed table rows) takes
about 0.5 s on our 2-core machines, and an ordinary 50 KB post about 0.12-0.15 s.
"""

from __future__ import annotations

import html
import re
from collections import Counter
from collections.abc import Iterator
from contextvars import ContextVar
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urlsplit

import bleach
from bleach.html5lib_shim import Filter

__all__ = [
    "ALLOWED_ATTRIBUTES",
    "ALLOWED_PROTOCOLS",
    "ALLOWED_TAGS",
    "IMAGE_PROTOCOLS",
    "LINK_REL",
    "MAX_ATTRIBUTES",
    "MAX_BODY_BYTES",
    "MAX_BODY_TAGS",
    "MAX_NESTING",
    "STRIP_COMMENTS",
    "BodyTooLarge",
    "clean_html",
    "html_to_text",
]

#: Largest body, in UTF-8 bytes, that :func:`clean_html` accepts. bleach needs 0.12-0.15 s
#: for 50 KB of ordinary post HTML on our 2-core machines (SECURITY.md L2 measured 78 ms)
#: and up to about 0.5 s for the slowest hostile 50 KB, so a save stays under a second.
MAX_BODY_BYTES = 50_000

#: Most ``<`` characters a body may contain: every start or end tag, comment, and stray
#: ``<`` in text (editors write ``&lt;``). html5lib spends time quadratic in the number of
#: siblings in some trees (5 s for 11 000 unclosed table rows) and ~15 µs on each stray ``<``.
MAX_BODY_TAGS = 5_000

#: Deepest nesting :func:`clean_html` accepts, estimated from the tags before parsing.
#: html5lib's tree building is quadratic in depth (30 s for 12 000 nested lists).
MAX_NESTING = 100

#: Most attributes one tag may carry: html5lib's duplicate-attribute check is quadratic.
MAX_ATTRIBUTES = 50

#: Elements a post may contain. Anything else is removed and its text kept.
ALLOWED_TAGS: frozenset[str] = frozenset(
    {
        "p", "br", "hr",
        "strong", "b", "em", "i", "u", "s",
        "h2", "h3", "h4",
        "ul", "ol", "li",
        "blockquote", "code", "pre",
        "a", "img", "figure", "figcaption",
        "table", "thead", "tbody", "tr", "th", "td",
    }
)  # fmt: skip

#: Attributes kept per element. No element may carry ``style``, ``class`` or ``on*``.
ALLOWED_ATTRIBUTES: dict[str, frozenset[str]] = {
    "a": frozenset({"href", "title"}),
    "img": frozenset({"src", "alt", "title", "width", "height"}),
    "th": frozenset({"colspan", "rowspan"}),
    "td": frozenset({"colspan", "rowspan"}),
}

#: URL schemes allowed in ``href``. bleach drops any other scheme (``javascript:``, ``data:``).
ALLOWED_PROTOCOLS: frozenset[str] = frozenset({"http", "https", "mailto"})

#: URL schemes allowed in ``img[src]``, besides Beacon's own ``/...`` attachment URLs.
IMAGE_PROTOCOLS: frozenset[str] = frozenset({"http", "https"})

#: HTML comments are always removed (a precondition of CVE-2021-23980 otherwise).
STRIP_COMMENTS = True

#: The ``rel`` every kept link gets.
LINK_REL = "noopener noreferrer"


class BodyTooLarge(ValueError):
    """A post body is too big or too complex to sanitize quickly; the web layer answers 413.

    :param what: which limit was hit, e.g. ``"bytes"`` or ``"levels of nesting"``.
    :param amount: how much the body has (for bytes, at least this many).
    :param limit: the limit, one of :data:`MAX_BODY_BYTES`, :data:`MAX_BODY_TAGS`,
        :data:`MAX_NESTING` or :data:`MAX_ATTRIBUTES`.
    """

    def __init__(self, what: str, amount: int, limit: int) -> None:
        super().__init__(
            f"The post body has {amount} {what}; the limit is {limit}."
            " Shorten or simplify the post, or move large content into an attachment."
        )
        self.what = what
        self.amount = amount
        self.limit = limit


# The WHATWG URL parser removes tabs and newlines anywhere, trims C0 controls and spaces at
# both ends, and reads "\" as "/" in http(s) URLs: normalise the same way before deciding.
_URL_TRIM = "".join(map(chr, range(0x21)))
_URL_TAB_OR_NEWLINE = re.compile(r"[\t\n\r]")
_DIMENSION = re.compile(r"\d{1,5}")


def _browser_view(value: str) -> str:
    """Return ``value`` roughly as a browser's URL parser reads it, for checks only."""
    value = html.unescape(value).strip(_URL_TRIM)
    return _URL_TAB_OR_NEWLINE.sub("", value).replace("\\", "/")


def _is_protocol_relative(value: str) -> bool:
    return _browser_view(value).startswith("//")


def _image_source_allowed(value: str) -> bool:
    url = _browser_view(value)
    if url.startswith("/"):
        return not url.startswith("//")
    try:
        scheme = urlsplit(url).scheme.lower()
    except ValueError:
        return False
    return scheme in IMAGE_PROTOCOLS


def _allow_attribute(tag: str, name: str, value: str) -> bool:
    """Decide one attribute; bleach then also checks the scheme of ``href`` and ``src``."""
    if name not in ALLOWED_ATTRIBUTES.get(tag, ()):
        return False
    if value == ">":
        # bleach 6.4's serializer takes a value of exactly ">" for the end of the tag and
        # then stops un-doubling "&amp;" in the tag's later attributes: every save would
        # add an "amp;" to them. Such a value carries nothing, so drop it.
        return False
    if name == "href":
        return not _is_protocol_relative(value)
    if name == "src":
        return _image_source_allowed(value)
    if name in {"width", "height", "colspan", "rowspan"}:
        return _DIMENSION.fullmatch(value.strip()) is not None
    return True


class _LinkRel(Filter):
    """Give every link that survived sanitizing ``rel="noopener noreferrer"``."""

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for token in super().__iter__():
            if (
                token["type"] in {"StartTag", "EmptyTag"}
                and token["name"] == "a"
                and (None, "href") in token["data"]
            ):
                token["data"][(None, "rel")] = LINK_REL
            yield token


# Trees the parser builds but would not build again from their own serialization (HTML
# parsing does not round-trip): the second parse moves things, so cleaning would not be
# idempotent. Seen in fuzzing: an <a> in an <a>, a heading in a heading, blocks in a <p>,
# an <li> in an <li>, content left inside a table by foster parenting.
_P_CLOSERS = frozenset({"p", "h2", "h3", "h4", "ul", "ol", "blockquote", "pre", "figure", "figcaption",
                        "table", "hr"})  # fmt: skip
_HEADINGS = frozenset({"h2", "h3", "h4"})
_TABLE_PARTS = frozenset({"table", "thead", "tbody", "tr"})
_unsettled: ContextVar[bool] = ContextVar("_unsettled", default=False)


class _Settledness(Filter):
    """Note in :data:`_unsettled` when the cleaned tree may re-parse differently.

    It errs towards false alarms, which only cost a second pass over the output.
    """

    def __iter__(self) -> Iterator[dict[str, Any]]:
        open_tags: list[str] = []
        for token in super().__iter__():
            kind = token["type"]
            if kind == "StartTag":
                if self._moves(token["name"], open_tags):
                    _unsettled.set(True)
                open_tags.append(token["name"])
            elif kind == "EndTag" and open_tags:
                open_tags.pop()
            elif kind == "Characters" and open_tags and open_tags[-1] in _TABLE_PARTS:
                if token["data"].strip():
                    _unsettled.set(True)
            elif kind == "EmptyTag" and self._moves(token["name"], open_tags):
                _unsettled.set(True)
            yield token

    @staticmethod
    def _moves(name: str, open_tags: list[str]) -> bool:
        if open_tags and open_tags[-1] in _TABLE_PARTS and name not in _TABLE_PARTS | {"td", "th"}:
            return True
        if name == "a" and "a" in open_tags:
            return True
        if name in _HEADINGS and _HEADINGS.intersection(open_tags):
            return True
        if name in _P_CLOSERS and "p" in open_tags:
            return True
        if name == "li":
            lists = [tag for tag in open_tags if tag in {"li", "ul", "ol"}]
            return bool(lists) and lists[-1] == "li"
        return False


class _PreLeadingNewline(Filter):
    """Double a newline that starts a ``<pre>``, as HTML serialization requires.

    Parsers drop one newline right after ``<pre>``; without this, cleaning
    ``<pre>&#10;x</pre>`` twice would lose a line, and ``clean(clean(x))`` would differ.
    """

    def __iter__(self) -> Iterator[dict[str, Any]]:
        after_pre = False
        for token in super().__iter__():
            if after_pre and token["type"] in {"Characters", "SpaceCharacters"}:
                if token["data"]:
                    if token["data"].startswith("\n"):
                        token = {**token, "data": "\n" + token["data"]}
                    after_pre = False
            else:
                after_pre = token["type"] == "StartTag" and token["name"] == "pre"
            yield token


_cleaner = bleach.Cleaner(
    tags=ALLOWED_TAGS,
    attributes=_allow_attribute,
    protocols=ALLOWED_PROTOCOLS,
    strip=True,
    strip_comments=STRIP_COMMENTS,
    filters=[_LinkRel, _PreLeadingNewline, _Settledness],
)
# bleach 6.4's serializer re-escapes entities in attribute values it quotes with ' (values
# holding a "), so title='&amp; "' grew by an "amp;" on every save. Always quoting with "
# (and writing " as &quot;) keeps cleaning idempotent.
_cleaner.serializer.use_best_quote_char = False


def _check_size(body: str) -> None:
    # Each character is at least one UTF-8 byte, so a long str fails without being encoded.
    size = len(body) if len(body) > MAX_BODY_BYTES else len(body.encode("utf-8", "surrogatepass"))
    if size > MAX_BODY_BYTES:
        raise BodyTooLarge("bytes", size, MAX_BODY_BYTES)


# A linear pre-scan that follows html5lib's tokenizer states for tags, comments and
# attribute values (bleach never lets the tokenizer into raw-text states), so that what it
# counts is at least what html5lib will see. It reads each tag once; no backtracking.
_MARKUP = re.compile(r"<(?:(/?)([A-Za-z][^\t\n\f\r />]*)|(!--)|[!?/])")
_COMMENT_END = re.compile(r"--!?>")
_BEFORE_ATTRIBUTE = re.compile(r"[\t\n\f\r /]*")
_ATTRIBUTE_NAME_REST = re.compile(r"[^\t\n\f\r /=>]*")
_BLANKS = re.compile(r"[\t\n\f\r ]*")
_UNQUOTED_VALUE = re.compile(r"[^\t\n\f\r >]*")
_VOID = frozenset(
    {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
     "track", "wbr"}
)  # fmt: skip
# End tags that html5lib may leave out; the estimate ignores them (they close themselves).
_SELF_CLOSING_BY_SIBLING = frozenset(
    {"p", "li", "dt", "dd", "tr", "td", "th", "thead", "tbody", "tfoot", "option",
     "optgroup", "caption", "colgroup", "rb", "rt", "rtc", "rp", "html", "head", "body"}
)  # fmt: skip


def _skip_attributes(body: str, pos: int) -> int:
    """Read the attributes of the tag whose name ends at ``pos``; return where it ends."""
    end, count = len(body), 0
    while True:
        pos = _BEFORE_ATTRIBUTE.match(body, pos).end()
        if pos >= end:
            return end
        if body[pos] == ">":
            return pos + 1
        count += 1
        if count > MAX_ATTRIBUTES:
            raise BodyTooLarge("attributes on one element", count, MAX_ATTRIBUTES)
        pos = _BLANKS.match(body, _ATTRIBUTE_NAME_REST.match(body, pos + 1).end()).end()
        if pos < end and body[pos] == "=":
            pos = _BLANKS.match(body, pos + 1).end()
            if pos >= end:
                return end
            quote = body[pos]
            if quote in "\"'":
                close = body.find(quote, pos + 1)
                if close < 0:
                    return end
                pos = close + 1
            elif quote == ">":
                return pos + 1
            else:
                pos = _UNQUOTED_VALUE.match(body, pos).end()


def _check_structure(body: str) -> None:
    """Reject bodies whose tags, nesting or attributes would make bleach slow.

    Nesting is estimated with a stack of open elements: an end tag closes up to the
    nearest open element of its name, void elements and elements whose end tag is
    optional are not counted.
    """
    tags = body.count("<")
    if tags > MAX_BODY_TAGS:
        raise BodyTooLarge("tags", tags, MAX_BODY_TAGS)
    stack, open_names = [], Counter[str]()
    pos, end = 0, len(body)
    while (match := _MARKUP.search(body, pos)) is not None:
        slash, name, comment = match.groups()
        if comment:
            if body.startswith((">", "->"), match.end()):
                pos = body.index(">", match.end()) + 1
            else:
                close = _COMMENT_END.search(body, match.end())
                pos = close.end() if close else end
            continue
        if name is None:  # <!DOCTYPE, <![CDATA[, <?...>, </...>: bogus comments up to ">"
            close = body.find(">", match.end())
            pos = close + 1 if close >= 0 else end
            continue
        pos = _skip_attributes(body, match.end())
        name = name.lower()
        if name in _VOID or name in _SELF_CLOSING_BY_SIBLING:
            continue
        if not slash:
            stack.append(name)
            open_names[name] += 1
            if len(stack) > MAX_NESTING:
                raise BodyTooLarge("levels of nesting", len(stack), MAX_NESTING)
        elif open_names[name]:
            while (closed := stack.pop()) != name:
                open_names[closed] -= 1
            open_names[name] -= 1


def clean_html(body: str) -> str:
    """Return ``body`` with everything outside the allowlist removed.

    Disallowed elements are stripped (their text is kept, escaped), comments are dropped,
    disallowed attributes and URLs are removed and links get :data:`LINK_REL`. Cleaning
    the result again returns it unchanged (unless the result is itself over
    :data:`MAX_BODY_BYTES`). Call this once, when a post is saved.

    :param body: HTML from the editor or the API.
    :raise BodyTooLarge: if ``body`` is over :data:`MAX_BODY_BYTES` in UTF-8, or has more
        than :data:`MAX_BODY_TAGS` tags, :data:`MAX_NESTING` levels of nesting or
        :data:`MAX_ATTRIBUTES` attributes on one tag; checked by a linear scan before any
        parsing.
    """
    _check_size(body)
    _check_structure(body)
    cleaned = _clean_once(body)
    # If the tree may re-parse differently (see _Settledness), clean the output again until
    # it stops changing, so that cleaning is idempotent. Editor output never needs this; a
    # false alarm costs one pass; every unsettled shape in 120 000 fuzzed bodies settled
    # within two extra passes. Output over the size limit is left alone: cleaning it again
    # would raise BodyTooLarge anyway, and escaping can make it five times the input
    # ("&" becomes "&amp;"), which would make the extra passes slow.
    for _ in range(_MAX_EXTRA_PASSES):
        if not _unsettled.get() or len(cleaned) > MAX_BODY_BYTES:
            break
        again = _clean_once(cleaned)
        if again == cleaned:
            break
        cleaned = again
    return cleaned


_MAX_EXTRA_PASSES = 2


def _clean_once(body: str) -> str:
    _unsettled.set(False)
    return _cleaner.clean(body)


# Plain text ---------------------------------------------------------------------------

_BLOCKS = frozenset(
    {
        "address", "article", "aside", "blockquote", "dd", "details", "div", "dl", "dt",
        "fieldset", "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5",
        "h6", "header", "main", "nav", "ol", "p", "pre", "section", "summary", "table",
        "ul",
    }
)  # fmt: skip
_LINE_BLOCKS = frozenset({"li", "tr", "caption", "thead", "tbody", "tfoot"})
_HIDDEN = frozenset({"script", "style", "template", "head", "title", "noscript", "textarea"})
_SPACES = re.compile(r"\s+")
_MANY_BREAKS = re.compile(r"\n{3,}")


class _TextExtractor(HTMLParser):
    """Walk HTML and write readable text: blocks become paragraphs, links keep their URL."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.pending_breaks = 0  # newlines owed before the next text
        self.hidden = 0  # depth inside elements whose content is not text
        self.pre = 0  # depth inside <pre>
        self.lists: list[list[int]] = []  # one [counter] per open list; -1 = bullets
        self.links: list[tuple[str, int]] = []  # (href, len(out) at the opening tag)
        self.cells_in_row = 0

    # output helpers
    def _break(self, count: int) -> None:
        if self.out:
            self.pending_breaks = max(self.pending_breaks, count)

    def _write(self, text: str) -> None:
        if self.pending_breaks:
            self.out.append("\n" * self.pending_breaks)
            self.pending_breaks = 0
        self.out.append(text)

    def _at_line_start(self) -> bool:
        return self.pending_breaks > 0 or not self.out or self.out[-1].endswith("\n")

    # parser callbacks
    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _HIDDEN:
            self.hidden += 1
            return
        attributes = {name: value or "" for name, value in attrs}
        if tag in _BLOCKS:
            self._break(1 if self.lists and tag in {"ul", "ol"} else 2)
        if tag == "pre":
            self.pre += 1
        elif tag in {"ul", "ol"}:
            self.lists.append([0 if tag == "ol" else -1])
        elif tag == "li":
            self._break(1)
            indent = "  " * max(len(self.lists) - 1, 0)
            if self.lists and self.lists[-1][0] >= 0:
                self.lists[-1][0] += 1
                self._write(f"{indent}{self.lists[-1][0]}. ")
            else:
                self._write(f"{indent}- ")
        elif tag == "tr":
            self._break(1)
            self.cells_in_row = 0
        elif tag in {"td", "th"}:
            if self.cells_in_row:
                self._write(" | ")
            self.cells_in_row += 1
        elif tag == "br":
            self._write("\n")
        elif tag == "hr":
            self._break(2)
            self._write("---")
            self._break(2)
        elif tag == "img":
            alt = _SPACES.sub(" ", attributes.get("alt", "")).strip()
            if alt:
                self._write(f"[{alt}]")
        elif tag == "a":
            self.links.append((attributes.get("href", "").strip(), len(self.out)))
        elif tag in _LINE_BLOCKS:
            self._break(1)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in {"br", "hr", "img"}:
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in _HIDDEN:
            self.hidden = max(self.hidden - 1, 0)
            return
        if tag == "a" and self.links:
            href, start = self.links.pop()
            label = _SPACES.sub(" ", "".join(self.out[start:])).strip()
            shown = href.removeprefix("mailto:")
            if href and not href.startswith("#") and shown not in label:
                self._write(f" ({href})" if label else href)
        elif tag == "pre":
            self.pre = max(self.pre - 1, 0)
        elif tag in {"ul", "ol"} and self.lists:
            self.lists.pop()
        if tag in _BLOCKS:
            self._break(1 if self.lists and tag in {"ul", "ol"} else 2)
        elif tag in _LINE_BLOCKS:
            self._break(1)

    def handle_data(self, data: str) -> None:
        if self.hidden:
            return
        if self.pre:
            self._write(data)
            return
        text = _SPACES.sub(" ", data)
        if self._at_line_start():
            text = text.lstrip()
        if text:
            self._write(text)

    def text(self) -> str:
        lines = (line.rstrip() for line in "".join(self.out).split("\n"))
        return _MANY_BREAKS.sub("\n\n", "\n".join(lines)).strip()


def html_to_text(body: str) -> str:
    """Return a plain-text version of ``body`` for email digests and search.

    Whitespace is collapsed as a browser would (except inside ``<pre>``), blocks are
    separated by a blank line, ``<br>`` and list items start a new line, and a link's URL is
    written after its text unless the text already shows it. Entities are decoded; the
    result is text, so escape it wherever it goes into HTML.

    :param body: HTML, normally the output of :func:`clean_html`.
    """
    parser = _TextExtractor()
    parser.feed(body)
    parser.close()
    return parser.text()
