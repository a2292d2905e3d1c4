"""The ``Link`` header per RFC 8288 and origins per RFC 6454 (``links.py``): whatever a
conforming server may send, not only the seed's example."""

from __future__ import annotations

import pytest

from django_pjpixel.api.links import Link, origin, parse_links

BASE = "https://api.pj.nu/click-conversion/pixels/p/events?from=a&to=b&page=1"
P2 = "https://api.pj.nu/click-conversion/pixels/p/events?page=2"


def rels(*values: str, base: str = BASE) -> dict[str, str]:
    """``{rel: target}`` of the links about this resource, the first of each rel."""
    found: dict[str, str] = {}
    for link in parse_links(list(values), base):
        if link.about_this_resource:
            for rel in link.rels:
                found.setdefault(rel, link.target)
    return found


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        # The seed's shape.
        (f'<{P2}>; rel="next"', {"next": P2}),
        # Several relation types in one rel (RFC 8288 section 3.3).
        (f'<{P2}>; rel="next last"', {"next": P2, "last": P2}),
        (f'<{P2}>; rel="  next\tlast "', {"next": P2, "last": P2}),
        # Relation types and parameter names are case-insensitive.
        (f'<{P2}>; REL="NEXT"', {"next": P2}),
        (f"<{P2}>; Rel=Next", {"next": P2}),
        # A token instead of a quoted string, and the single quotes some servers write.
        (f"<{P2}>; rel=next", {"next": P2}),
        (f"<{P2}>; rel='next'", {"next": P2}),
        # Whitespace around ; and = (OWS, BWS).
        (f'<{P2}>  ;  rel  =  "next"  ', {"next": P2}),
        (f'<{P2}>;rel="next",<{P2}0>;rel="last"', {"next": P2, "last": P2 + "0"}),
        # Commas and semicolons inside a quoted string, and escaped quotes.
        (f'<{P2}>; title="a, <b>; c"; rel="next"', {"next": P2}),
        (f'<{P2}>; title="say \\"hi\\", rel=\\"last\\""; rel="next"', {"next": P2}),
        # A comma inside the URI.
        (
            "<https://api.pj.nu/x?ids=1,2&page=2>; rel=next",
            {"next": "https://api.pj.nu/x?ids=1,2&page=2"},
        ),
        # Only the first rel counts (section 3.3).
        (f'<{P2}>; rel="next"; rel="last"', {"next": P2}),
        # Other parameters, with and without values, and extension ones.
        (
            f'<{P2}>; crossorigin; type="application/json"; '
            "title*=UTF-8'de'n%c3%a4chste; rel=\"next\"",
            {"next": P2},
        ),
        # Relative references, resolved against the URL asked for (section 3.2).
        (
            '<?page=2>; rel="next"',
            {"next": "https://api.pj.nu/click-conversion/pixels/p/events?page=2"},
        ),
        (
            '<events?page=2>; rel="next"',
            {"next": "https://api.pj.nu/click-conversion/pixels/p/events?page=2"},
        ),
        ("</click-conversion/pixels/p/events?page=2>; rel=next", {"next": P2}),
        ("<//api.pj.nu/click-conversion/pixels/p/events?page=2>; rel=next", {"next": P2}),
        # An anchor naming this resource keeps the link; another resource's does not.
        (f'<{P2}>; rel="next"; anchor="{BASE}"', {"next": P2}),
        (f'<{P2}>; rel="next"; anchor="#here"', {"next": P2}),
        (f'<{P2}>; rel="next"; anchor="/click-conversion/other"', {}),
        # Nothing usable.
        ("", {}),
        ("garbage", {}),
        ("<", {}),
        (f"<{P2}>", {}),
        (f'<{P2}>; rel=""', {}),
        # What parses before a broken link-value is kept.
        (f'<{P2}>; rel="next", garbage, <{P2}>; rel="last"', {"next": P2}),
    ],
)
def test_parse_links(header: str, expected: dict[str, str]) -> None:
    assert rels(header) == expected


def test_several_link_headers() -> None:
    # Each Link field line may carry links (requests joins repeated fields with ", ").
    assert rels(f'<{P2}>; rel="next"', f'<{P2}0>; rel="last"') == {"next": P2, "last": P2 + "0"}


def test_the_first_link_of_a_relation_counts() -> None:
    assert rels(f'<{P2}>; rel="next", <{P2}0>; rel="next"') == {"next": P2}


def test_a_link_object() -> None:
    (link,) = parse_links([f'<{P2}>; rel="Next next LAST"'], BASE)
    assert link == Link(target=P2, rels=("next", "last"), about_this_resource=True)


def test_an_unreadable_target_is_skipped() -> None:
    assert rels('<https://[::1/x>; rel="prev", <' + P2 + '>; rel="next"') == {"next": P2}


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("https://api.pj.nu/x", "https://api.pj.nu:443/y", True),
        ("http://api.pj.nu/x", "http://api.pj.nu:80/y", True),
        ("HTTPS://API.PJ.NU/x", "https://api.pj.nu/x", True),
        ("https://[::1]/x", "https://[::1]:443/x", True),
        ("https://api.pj.nu/x", "http://api.pj.nu/x", False),
        ("https://api.pj.nu/x", "https://api.pj.nu:8443/x", False),
        ("http://api.pj.nu:443/x", "https://api.pj.nu/x", False),
        ("https://api.pj.nu/x", "https://api.pj.nu./x", False),
        ("https://api.pj.nu/x", "https://evil.example/x", False),
    ],
)
def test_origins(a: str, b: str, same: bool) -> None:
    assert (origin(a) == origin(b)) is same


def test_an_unreadable_port_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="Port"):
        origin("https://api.pj.nu:99999/x")
