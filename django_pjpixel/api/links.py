"""The ``Link`` header as RFC 8288 defines it, and origins as RFC 6454 compares them.

``parse_links`` follows RFC 8288's own parsing algorithm (Appendix B): one or
more link-values, separated by commas, each ``<URI-Reference>`` and parameters
``; name=token`` or ``; name="quoted string"``. It is written here because
requests' ``response.links`` (``parse_header_links``) gets a conforming header
wrong in ways a server may well send: it keeps ``rel="next last"`` as one
relation, splits at a comma inside a quoted string, takes the last ``rel``
where the first counts, and matches parameter names and relations
case-sensitively.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urldefrag, urljoin, urlsplit

# RFC 6454 section 4: a URI without a port has its scheme's default one.
DEFAULT_PORTS = {"http": 80, "https": 443}
_OWS = " \t"

Origin = tuple[str, str, int | None]


@dataclass(frozen=True)
class Link:
    """One link of the header: its absolute ``target``, its relation types (lowercase),
    and whether its context is the resource that was asked for (no other ``anchor``)."""

    target: str
    rels: tuple[str, ...]
    about_this_resource: bool


def origin(url: str) -> Origin:
    """``url``'s origin per RFC 6454: scheme and host lowercase, the port explicit.

    ``https://API.pj.nu`` and ``https://api.pj.nu:443`` are one origin. Raises
    ``ValueError`` for a URL whose port or host cannot be read.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    port = parts.port  # ValueError for a port out of range or not a number
    return scheme, (parts.hostname or "").lower(), port or DEFAULT_PORTS.get(scheme)


def parse_links(values: list[str], base: str) -> list[Link]:
    """The links of every ``Link`` header value in ``values``, for a response from ``base``.

    Relative targets and anchors are resolved against ``base`` (the URL asked
    for; RFC 8288 section 3.2). Each relation type of a ``rel`` gives the link
    under that type; only the first ``rel`` parameter counts. Parsing stops at
    what cannot be a link-value, keeping the links before it; never raises.
    """
    links: list[Link] = []
    for value in values:
        links.extend(_parse_value(value, base))
    return links


def _parse_value(text: str, base: str) -> list[Link]:
    links: list[Link] = []
    pos = 0
    while pos < len(text):
        pos = _skip(text, pos, _OWS + ",")
        if pos >= len(text):
            break
        if text[pos] != "<":
            return links
        end = text.find(">", pos + 1)
        if end < 0:
            return links
        target_ref = text[pos + 1 : end]
        params, pos = _parse_params(text, end + 1)
        rel = next((value for name, value in params if name == "rel"), "")
        anchor = next((value for name, value in params if name == "anchor"), None)
        try:
            target = urljoin(base, target_ref.strip())
            about = anchor is None or _same_resource(urljoin(base, anchor), base)
        except ValueError:  # an unclosed IPv6 bracket, say
            continue
        rels = tuple(dict.fromkeys(rel.lower().split()))
        if rels:
            links.append(Link(target, rels, about))
    return links


def _parse_params(text: str, pos: int) -> tuple[list[tuple[str, str]], int]:
    """RFC 8288 Appendix B.3: the parameters from ``pos``, and where the next link starts."""
    params: list[tuple[str, str]] = []
    while True:
        pos = _skip(text, pos, _OWS)
        if pos >= len(text) or text[pos] != ";":
            break
        pos = _skip(text, pos + 1, _OWS)
        start = pos
        while pos < len(text) and text[pos] not in "=;," + _OWS:
            pos += 1
        name = text[start:pos].lower()
        pos = _skip(text, pos, _OWS)
        value = ""
        if pos < len(text) and text[pos] == "=":
            pos = _skip(text, pos + 1, _OWS)
            if pos < len(text) and text[pos] == '"':
                value, pos = _quoted(text, pos)
            else:
                start = pos
                while pos < len(text) and text[pos] not in ";,":
                    pos += 1
                # A token has no quotes; a server writing rel='next' means next.
                value = text[start:pos].strip().strip("'")
        if name:
            params.append((name, value))
    # Up to the comma that ends this link-value (what cannot be a parameter is dropped).
    comma = text.find(",", pos)
    return params, len(text) if comma < 0 else comma + 1


def _quoted(text: str, pos: int) -> tuple[str, int]:
    """RFC 8288 Appendix B.4: the quoted string at ``pos`` unescaped, and the position after it."""
    out: list[str] = []
    pos += 1
    while pos < len(text):
        char = text[pos]
        if char == "\\" and pos + 1 < len(text):
            out.append(text[pos + 1])
            pos += 2
        elif char == '"':
            return "".join(out), pos + 1
        else:
            out.append(char)
            pos += 1
    return "".join(out), pos


def _skip(text: str, pos: int, chars: str) -> int:
    while pos < len(text) and text[pos] in chars:
        pos += 1
    return pos


def _same_resource(url: str, base: str) -> bool:
    return urldefrag(url)[0] == urldefrag(base)[0]
