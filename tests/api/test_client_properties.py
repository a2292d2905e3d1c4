"""Property tests: whatever the API (or a proxy in front of it) answers, the client
raises only the project's errors, never shows the secret, and never follows a link
off the configured origin."""

from __future__ import annotations

import json
import math
import re
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any
from urllib.parse import unquote, urlsplit

import requests
import responses
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from django_pjpixel.api.client import (
    MAX_VALUE,
    PrisjaktClient,
    parse_retry_after,
    to_api_amount,
)
from django_pjpixel.exceptions import (
    InvalidInput,
    PjpixelError,
    PrisjaktAPIError,
    Problem,
    RateLimit,
)

API = "https://api.pj.nu/click-conversion"
PIXEL = "5c034de4-8e86-4d16-9fd1-20cfec6c97e4"
SECRET = "s3cr3t-never-shown"
EVENTS_PATH = f"/click-conversion/pixels/{PIXEL}/events"
START = datetime(2025, 1, 1, tzinfo=timezone.utc)
ANY_URL = re.compile(r".*")

PROPERTIES = settings(
    max_examples=200,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def make_client(**kwargs: Any) -> PrisjaktClient:
    return PrisjaktClient(
        api_url=API,
        pixel_id=PIXEL,
        client_id="test-client",
        client_secret=SECRET,
        auth="headers",
        **kwargs,
    )


# -- strategies -----------------------------------------------------------------

# Header values as http.client would hand them over: latin-1, no line breaks.
header_text = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"),
    max_size=60,
)
texts = st.one_of(
    st.text(max_size=30),
    st.sampled_from([SECRET, f"echo {SECRET}!", "", "Shop not found"]),
)
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    texts,
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(texts, children, max_size=4),
    max_leaves=12,
)
problem_dicts = st.fixed_dictionaries(
    {},
    optional={
        "type": json_values,
        "title": json_values,
        "status": st.one_of(st.integers(100, 599), json_values),
        "detail": json_values,
        "instance": json_values,
        "field_errors": st.one_of(
            st.dictionaries(
                texts,
                st.one_of(texts, st.dictionaries(texts, json_values, max_size=3), json_values),
                max_size=3,
            ),
            json_values,
        ),
        "context": st.one_of(
            st.fixed_dictionaries({"request-id": json_values}),
            st.dictionaries(texts, json_values, max_size=3),
            json_values,
        ),
    },
).flatmap(
    lambda d: st.dictionaries(texts, json_values, max_size=2).map(lambda extra: {**extra, **d})
)


def escaped(text: str) -> str:
    return "".join(f"\\u{ord(ch):04x}" for ch in text)


@st.composite
def encoded_json(draw: st.DrawFn, values: st.SearchStrategy[Any]) -> bytes | str:
    """JSON text of a value, spelled in the ways a server may spell it."""
    text = json.dumps(draw(values), ensure_ascii=draw(st.booleans()))
    if draw(st.booleans()):
        text = text.replace(SECRET, escaped(SECRET))
    encoding = draw(st.sampled_from(["str", "utf-8", "utf-16", "utf-16-le", "utf-32"]))
    if encoding == "str":
        return text
    return text.encode(encoding, "surrogatepass")


def body_text(body: bytes | str) -> str:
    return body if isinstance(body, str) else body.decode("latin-1")


def deeply_nested(depth: int) -> str:
    return '{"title": "deep", "field_errors": {"a": {"message": ' + (
        "[" * depth + "]" * depth + "}}}"
    )


bodies = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=300),
    encoded_json(problem_dicts),
    encoded_json(json_values),
    st.integers(1, 50_000).map(lambda n: "[" * n + "]" * n),
    st.integers(1, 50_000).map(deeply_nested),
    st.sampled_from(
        [
            b"",
            b"<html><body><h1>502 Bad Gateway</h1></body></html>",
            f"<html>{SECRET}</html>".encode(),
            f"<html>{SECRET}</html>".encode("utf-16"),
            f"{SECRET[:4]}\x00{SECRET[4:]}".encode(),
        ]
    ),
)


# -- Problem.parse --------------------------------------------------------------


@PROPERTIES
@given(body=st.one_of(st.none(), bodies))
def test_problem_parse_never_raises_and_types_hold(body: bytes | str | None) -> None:
    problem = Problem.parse(body)

    if problem is None:
        return
    for member in (problem.type, problem.title, problem.detail, problem.instance):
        assert member is None or isinstance(member, str)
    assert problem.request_id is None or isinstance(problem.request_id, str)
    assert problem.status is None or (
        isinstance(problem.status, int) and not isinstance(problem.status, bool)
    )
    assert isinstance(problem.field_errors, dict)
    for name, err in problem.field_errors.items():
        assert isinstance(name, str)
        assert isinstance(err, dict)
        assert all(isinstance(key, str) for key in err)


@PROPERTIES
@given(data=problem_dicts)
def test_problem_keeps_well_typed_members_and_drops_the_rest(data: dict[str, Any]) -> None:
    problem = Problem.parse(json.dumps(data))

    assert problem is not None
    for name in ("type", "title", "detail", "instance"):
        value = data.get(name)
        assert getattr(problem, name) == (value if isinstance(value, str) else None)
    status = data.get("status")
    well_typed = isinstance(status, int) and not isinstance(status, bool)
    assert problem.status == (status if well_typed else None)
    context = data.get("context")
    request_id = context.get("request-id") if isinstance(context, dict) else None
    assert problem.request_id == (request_id if isinstance(request_id, str) else None)
    field_errors = data.get("field_errors")
    if not isinstance(field_errors, dict):
        assert problem.field_errors == {}
    else:
        for name, err in field_errors.items():
            if isinstance(err, dict):
                assert problem.field_errors[name] == err
            elif isinstance(err, str):
                assert problem.field_errors[name] == {"message": err}
            else:
                assert name not in problem.field_errors


# -- the client through arbitrary answers --------------------------------------

# Not 204 or 304: an answer with those must not have a body (urllib3 refuses one).
statuses = st.one_of(
    st.sampled_from([200, 201, 301, 302, 307, 400, 401, 403, 404, 409, 422, 429, 500, 502]),
    st.integers(300, 599).filter(lambda status: status != 304),
)
numbers = st.one_of(
    st.integers(-5, 10**400).map(str),
    st.sampled_from(["²", "١٢٠", "1_000", " 7 ", "1e3", "Mon, 01 Jan 99999999999 00:00:00 GMT"]),
    st.datetimes().map(lambda when: when.strftime("%a, %d %b %Y %H:%M:%S GMT")),
)
answer_headers = st.fixed_dictionaries(
    {},
    optional={
        "Retry-After": st.one_of(header_text, numbers),
        "X-RateLimit-Limit": st.one_of(header_text, numbers),
        "X-RateLimit-Remaining": st.one_of(header_text, numbers),
        "X-RateLimit-Reset": st.one_of(header_text, numbers),
        "request-id": st.one_of(header_text, st.just(SECRET)),
        "Content-Type": st.sampled_from(["application/json", "text/html", "application/x"]),
    },
)


@PROPERTIES
@given(status=statuses, body=bodies, headers=answer_headers)
def test_any_answer_gives_a_result_or_the_projects_error(
    status: int, body: bytes | str, headers: dict[str, str]
) -> None:
    client = make_client()
    with responses.RequestsMock(assert_all_requests_are_fired=False) as api:
        api.get(ANY_URL, status=status, body=body, headers=headers)
        error: PrisjaktAPIError | None = None
        try:
            result = client.get_event("e1")
        except PrisjaktAPIError as err:
            error = err
        assert len(api.calls) == 1
    if error is None:
        assert 200 <= status < 300
        shown = [repr(result.status)]
    else:
        shown = [str(error), repr(error), repr(error.problem), str(error.as_record())]
        assert error.status == status
        if error.retry_after is not None:
            assert math.isfinite(error.retry_after)
            assert error.retry_after >= 0
        if error.rate_limit is not None and error.rate_limit.reset_seconds is not None:
            assert math.isfinite(error.rate_limit.reset_seconds)
    assert not [text for text in shown if SECRET in text]
    assert SECRET not in repr(client)


@PROPERTIES
@given(headers=answer_headers)
def test_rate_limit_and_retry_after_headers_never_raise(headers: dict[str, str]) -> None:
    retry_after = parse_retry_after(headers.get("Retry-After"))
    assert retry_after is None or (math.isfinite(retry_after) and retry_after >= 0)
    rate = RateLimit.from_headers(headers)
    if rate is not None:
        for value in (rate.limit, rate.remaining, rate.reset_ms):
            assert value is None or value >= 0
        assert rate.reset_seconds is None or math.isfinite(rate.reset_seconds)


# -- Link headers ---------------------------------------------------------------

schemes = st.sampled_from(["https", "http", "HTTPS", "ftp", "javascript", "data", ""])
userinfos = st.sampled_from(["", "", "", "user@", "user:pw@", ":@", "api.pj.nu@", "%40@"])
hosts = st.sampled_from(
    [
        "api.pj.nu",
        "api.pj.nu",
        "API.pj.NU",
        "api.pj.nu.",
        "dev-api.pj.nu",
        "evil.example",
        "api.pj.nu.evil.example",
        "127.0.0.1",
        "[::1]",
        "[::ffff:127.0.0.1]",
        "[fe80::1%25eth0]",
        "[::1",
        "::1]",
        "api.pj.nu\\@evil.example",
    ]
)
ports = st.sampled_from(["", "", "", ":443", ":8443", ":0", ":99999", ":x", ":"])
paths = st.one_of(
    st.sampled_from(
        [
            EVENTS_PATH,
            EVENTS_PATH,
            "/click-conversion/pixels/other/events",
            "/click-conversion/../admin",
            "/click-conversion/%2e%2e/admin",
            "/click-conversion/./events",
            "/click-conversionX/events",
            "/click-conversion",
            "/",
            "",
            "/admin",
        ]
    ),
    st.text(alphabet="/.%2eabc-?#@:", max_size=20),
)
queries = st.one_of(
    st.integers(-2, 12).map(lambda n: f"?page={n}"),
    st.sampled_from(["", "?page=x", "?page=2&page=3", "?cursor=abc"]),
)
url_parts = (schemes, userinfos, hosts, ports, paths, queries)


def absolute_url(parts: tuple[str, ...]) -> str:
    scheme, userinfo, host, port, path, query = parts
    return f"{scheme}://{userinfo}{host}{port}{path}{query}"


@st.composite
def near_valid_urls(draw: st.DrawFn) -> str:
    """A valid next link with one part changed: where the interesting refusals are."""
    parts = ["https", "", "api.pj.nu", "", EVENTS_PATH, f"?page={draw(st.integers(1, 9))}"]
    which = draw(st.integers(0, len(parts) - 1))
    parts[which] = draw(url_parts[which])
    return absolute_url(tuple(parts))


absolute_urls = st.one_of(near_valid_urls(), st.tuples(*url_parts).map(absolute_url))
relative_urls = st.one_of(
    st.builds(lambda path, query: f"{path}{query}", paths, queries),
    st.builds(lambda query: f"events{query}", queries),
    queries,
    st.builds(lambda host, path: f"//{host}{path}", hosts, paths),
)
garbage = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"),
    max_size=40,
)
link_urls = st.one_of(absolute_urls, relative_urls, garbage)
rels = st.sampled_from(['"next"', "next", '"prev"', '"first"', '"last"', '"NEXT"', '""', "next;"])


@st.composite
def link_values(draw: st.DrawFn) -> str:
    if draw(st.integers(0, 9)) == 0:
        return draw(garbage)
    entries = [
        f"<{url}>; rel={rel}"
        for url, rel in draw(st.lists(st.tuples(link_urls, rels), min_size=1, max_size=4))
    ]
    return ", ".join(entries)


def assert_on_origin(url: str) -> None:
    parts = urlsplit(url)
    assert parts.scheme == "https", url
    assert parts.hostname == "api.pj.nu", url
    assert parts.port is None, url
    assert parts.username is None, url
    assert parts.password is None, url
    assert "@" not in parts.netloc, url
    assert parts.path.startswith("/click-conversion/"), url
    assert ".." not in unquote(parts.path).split("/"), url


@PROPERTIES
@given(links=st.lists(link_values(), min_size=1, max_size=5))
def test_links_never_lead_off_the_origin(links: list[str]) -> None:
    client = make_client(max_pages=6)
    served: list[str] = []

    def answer(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        number = len(served)
        served.append(str(request.url))
        headers = {"Link": links[number]} if number < len(links) else {}
        return 200, headers, json.dumps([{"id": str(number)}])

    with responses.RequestsMock(assert_all_requests_are_fired=False) as api:
        api.add_callback(responses.GET, ANY_URL, callback=answer)
        try:
            events = list(client.iter_events(start=START, end=START))
        except PjpixelError:
            events = None
        seen = [str(call.request.url) for call in api.calls]

    assert 1 <= len(seen) <= 6
    assert seen[0].startswith(f"{API}/pixels/{PIXEL}/events?")
    for url in seen:
        assert_on_origin(url)
    assert len(seen) == len(set(seen)), "a URL was requested twice"
    if events is not None:
        assert [e["id"] for e in events] == [str(n) for n in range(len(seen))]


@PROPERTIES
@given(pages=st.lists(st.lists(st.sampled_from("abcdef"), max_size=6), min_size=1, max_size=5))
def test_iter_events_yields_each_id_once_in_first_seen_order(pages: list[list[str]]) -> None:
    client = make_client()

    def answer(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        number = int(
            dict(p.split("=") for p in urlsplit(str(request.url)).query.split("&"))["page"]
        )
        link = {"Link": f'<{API}/pixels/{PIXEL}/events?page={number + 1}>; rel="next"'}
        headers = link if number < len(pages) else {}
        return 200, headers, json.dumps([{"id": i} for i in pages[number - 1]])

    with responses.RequestsMock() as api:
        api.add_callback(responses.GET, ANY_URL, callback=answer)
        ids = [e["id"] for e in client.iter_events(start=START, end=START)]
        assert len(api.calls) == len(pages)

    expected = list(dict.fromkeys(i for page in pages for i in page))
    assert ids == expected


# -- amounts --------------------------------------------------------------------

amounts = st.one_of(
    st.integers(-(10**12), 10**12),
    st.floats(),
    st.decimals(),
    st.decimals(min_value=-10, max_value=MAX_VALUE + 1, places=3),
    st.text(max_size=12),
    st.booleans(),
    st.none(),
    st.lists(st.integers(), max_size=2),
)


@PROPERTIES
@given(amount=amounts, units=st.sampled_from(["major", "minor"]))
def test_amount_is_in_range_or_refused_as_amount(amount: object, units: str) -> None:
    field: str | None
    try:
        value = to_api_amount(amount, units)
    except InvalidInput as err:
        field = err.field
    else:
        field = None
    if field is not None:
        assert field == "amount"
        return
    assert isinstance(value, int)
    assert 0 <= value <= MAX_VALUE
    exact = Decimal(str(amount)) * (100 if units == "minor" else 1)
    assert abs(exact - value) <= Decimal("0.5")
