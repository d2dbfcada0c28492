"""Property-based fuzzing of every parser the gateway exposes, through the running mesh (issue 11).

Real HTTP over loopback against `demo_mesh`: generated schematic bodies and URLs must never get a 5xx,
error bodies are one line of text, `?filename=` can never inject a header, Range answers are
self-consistent. Inputs go out in batches over one keep-alive `aiohttp.ClientSession`, many at a time,
so ten thousand of them take seconds rather than minutes. Nothing generated here may start a build:
a known schematic is only combined with versions the demo release does not have.
"""

from __future__ import annotations

import asyncio
import json
import re
import string
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote

import aiohttp
import pytest
import yaml
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from multidict import CIMultiDictProxy
from yarl import URL

from services.mesh.supervisor import Mesh
from tests.e2e.conftest import http_get
from tests.support.raw_http import raw_exchange

pytestmark = [pytest.mark.e2e, pytest.mark.registry]

BATCH = 50
PARALLEL = 24
UNKNOWN_SID = "a" * 64
AVAILABLE = re.compile(r"1\.(9|11|12|13)\.")  # the demo release's versions, in any spelling
FUZZ = settings(
    deadline=None,
    database=None,  # a shared checkout: no `.hypothesis/` examples from other runs
    # No shrinking: each example is a batch of requests, and every assertion names its request.
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)


@dataclass(frozen=True)
class Req:
    method: str
    target: str  # raw path and query, sent exactly as written
    body: bytes | None = None
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Reply:
    request: Req
    status: int
    headers: CIMultiDictProxy[str]
    body: bytes


@dataclass
class Client:
    """One event loop and one keep-alive session for every generated request of the module."""

    base: str
    runner: asyncio.Runner = field(default_factory=asyncio.Runner)
    session: aiohttp.ClientSession | None = None
    sent: int = 0

    async def _open(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(limit=PARALLEL, force_close=False)
        return aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60))

    def start(self) -> None:
        self.session = self.runner.run(self._open())

    def close(self) -> None:
        if self.session is not None:
            self.runner.run(self.session.close())
        self.runner.close()

    async def _one(self, request: Req, gate: asyncio.Semaphore) -> Reply:
        assert self.session is not None
        async with gate:
            url = URL(self.base + request.target, encoded=True)
            async with self.session.request(
                request.method, url, data=request.body, headers=dict(request.headers), allow_redirects=False
            ) as reply:
                return Reply(request, reply.status, reply.headers, await reply.read())

    def send(self, requests: list[Req]) -> list[Reply]:
        async def all_of_them() -> list[Reply]:
            gate = asyncio.Semaphore(PARALLEL)
            return await asyncio.gather(*(self._one(r, gate) for r in requests))

        replies = self.runner.run(all_of_them())
        self.sent += len(replies)
        return replies


@dataclass(frozen=True)
class Target:
    client: Client
    sid: str  # a schematic the mesh knows
    versions: tuple[str, ...]


@pytest.fixture(scope="module")
def target(demo_mesh: Mesh) -> Iterator[Target]:
    client = Client(demo_mesh.url)
    client.start()
    try:
        (created,) = client.send([Req("POST", "/schematics", b"customization:\n  extraKernelArgs: [fuzz=1]\n")])
        assert created.status == 201, created.body
        status, _, raw = http_get(f"{demo_mesh.url}/versions")
        assert status == 200
        yield Target(client, json.loads(created.body)["id"], tuple(json.loads(raw)))
    finally:
        client.close()


def assert_clean(reply: Reply) -> None:
    """No 5xx; an error is Go's `http.Error`: text/plain, one line and a newline (proxied bodies aside)."""
    request = reply.request
    assert reply.status < 500, f"{request.method} {request.target!r} body={request.body!r:.300} → {reply.status}"
    assert "X-Request-ID" in reply.headers, request
    proxied = request.target.startswith("/v2/siderolabs/") and reply.status != 404
    if reply.status >= 400 and request.method != "HEAD" and not proxied:
        assert reply.headers["Content-Type"] == "text/plain; charset=utf-8", (request, reply.headers)
        assert reply.body.endswith(b"\n") and reply.body.count(b"\n") == 1, (request, reply.body[:300])


# --- strategies: URL pieces --------------------------------------------------------------------

TRICKY = [
    "..", ".", "%2e%2e", "%2E%2E", ".%2e", "..%2f", "..%2F..%2F..%2Fetc%2Fpasswd", "%2f", "%5c", "..%5c", "%00",
    "%", "%zz", "%e0%a4", "%c0%ae%c0%ae", "~", ";", "%3b", "*", "%20", "+", "@", ":", "a:b", "%3f", "%23",
    "latest", "sha256:" + "0" * 64, "sha256-" + "0" * 64 + ".sig", "sha256:", "v", "v1", "1.2.3.4", "-", "x" * 300,
    "metal-amd64.iso", "kernel-amd64", "cmdline-metal-amd64", "initramfs-amd64.xz", "installer-amd64.tar",
    "metal-arm64-secureboot-uki.efi", "aws-amd64.raw.xz", "metal-amd64.raw.zst", "rpi_generic-arm64.raw.xz",
    "metal-amd64.qcow2", "vmware-amd64.ova", "iso-amd64.raw.xz", "metal-x86_64", "metal-i386-secureboot",
    "talosctl-linux-amd64", "talosctl-windows-amd64.exe", "installer", "metal-installer", "installer-secureboot",
    "-installer", "siderolabs", "manifests", "blobs", "referrers", "tags", "list", "imager", "installer-base",
]  # fmt: skip
# Printable, URL-safe enough to go out unescaped; everything else is percent-encoded first.
RAW_SAFE = string.ascii_letters + string.digits + "-._~!$&'()*+,;=:@"


def encoded_text(max_size: int = 40) -> st.SearchStrategy[str]:
    """Arbitrary text (incl. `/`, controls, non-ASCII) percent-encoded as one segment."""
    return st.text(st.characters(exclude_categories=["Cs"]), max_size=max_size).map(lambda s: quote(s, safe=""))


SEGMENT = st.one_of(
    st.sampled_from(TRICKY),
    encoded_text(),
    st.text(RAW_SAFE, min_size=1, max_size=30),
    st.lists(st.sampled_from(TRICKY), min_size=2, max_size=3).map("".join),
    st.builds(lambda a, b: f"{a}-{b}", st.sampled_from(TRICKY), st.sampled_from(TRICKY)),
)
NOT_A_VERSION = st.one_of(
    st.sampled_from(["v1.99.0", "1.99.0", "v1.5.0", "v1.12", "v1", "v1.12.1-", "latest", "v01.12.1", "vv1.12.1"]),
    SEGMENT,
).filter(lambda v: not AVAILABLE.search(unquote(v)))
QUERY = st.one_of(
    st.just(""),
    st.builds(lambda v: f"?filename={v}", st.one_of(encoded_text(), st.sampled_from(TRICKY))),
    st.builds(lambda k, v: f"?{k}={v}", SEGMENT, SEGMENT),
)
METHODS = st.sampled_from(["GET"] * 6 + ["HEAD"] * 3 + ["POST", "PUT", "DELETE", "OPTIONS", "PATCH"])
PREFIXES = st.sampled_from(["image", "pxe", "talosctl", "v2", "schematics", "version", "versions", "x"])


def url_requests(sid: str, available: tuple[str, ...]) -> st.SearchStrategy[Req]:
    """Requests for every URL parser of the gateway; a known schematic never meets a real version.

    Strategies are built once here, not per draw: building them is what makes Hypothesis slow.
    """
    any_version = st.one_of(st.sampled_from(available), NOT_A_VERSION)
    sids = st.one_of(st.just(UNKNOWN_SID), st.just(sid), SEGMENT)

    def asset(kind: str) -> st.SearchStrategy[str]:
        unknown = st.builds(lambda s, v: f"{s}/{v}", st.one_of(st.just(UNKNOWN_SID), SEGMENT), any_version)
        known = st.builds(lambda v: f"{sid}/{v}", NOT_A_VERSION)
        return st.builds(lambda head, p, q: f"/{kind}/{head}/{p}{q}", st.one_of(unknown, known), SEGMENT, QUERY)

    def v2(parts: list[str]) -> str:
        if sid in parts and (AVAILABLE.search(unquote(parts[-1])) or parts[-1] == "latest"):
            parts[-1] = "v1.99.0"  # an installer tag of the known schematic would start a build
        return "/v2/" + "/".join(parts)

    paths = st.one_of(
        asset("image"),
        asset("pxe"),
        st.builds(lambda v, p: f"/talosctl/{v}/{p}", any_version, SEGMENT),
        st.builds(lambda v: f"/talosctl/{v}", any_version),
        st.lists(st.one_of(SEGMENT, st.sampled_from([sid, UNKNOWN_SID, ""])), max_size=6).map(v2),
        st.builds(lambda s: f"/schematics/{s}", sids),
        st.builds(
            lambda v, w: f"/version/{v}/{w}/official", any_version, st.sampled_from(["extensions", "overlays", "x"])
        ),
        # the router itself: any depth under every prefix
        st.builds(lambda p, rest, q: "/".join(["", p, *rest]) + q, PREFIXES, st.lists(SEGMENT, max_size=6), QUERY),
    )
    return st.builds(Req, METHODS, paths)


def test_url_parsers_never_fail_with_5xx(target: Target) -> None:
    seen: list[int] = []

    @settings(FUZZ, max_examples=130)
    @given(st.lists(url_requests(target.sid, target.versions), min_size=BATCH, max_size=BATCH))
    def check(requests: list[Req]) -> None:
        for reply in target.client.send(requests):
            assert_clean(reply)
            seen.append(reply.status)

    check()
    assert len(seen) >= 6000
    assert {400, 404, 405} <= set(seen)  # the fuzz reached the parsers, not only the router


# --- strategies: schematic bodies --------------------------------------------------------------

KEYS = [
    "customization", "extraKernelArgs", "systemExtensions", "officialExtensions", "meta", "key", "value", "overlay",
    "image", "name", "options", "secureboot", "includeWellKnownCertificates", "enrollKeys", "bootloader",
    "diskImage", "sectorSize", "embeddedMachineConfiguration", "owner", "<<", "", "unknown",
]  # fmt: skip
YAML_NOISE = [
    ":", "- ", "{", "}", "[", "]", ",", "&a ", "*a", "!!binary ", "!!str ", "!tag ", "|", ">", "%YAML 1.1\n",
    "---\n", "...\n", "#", "'", '"', "\t", "\n", "  ", "? ", "@", "`", "\\", "\x00", "\ufeff", "<<: ",
]  # fmt: skip

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(["siderolabs/amd-ucode", "grub", "sd-boot", "dual-boot", "auto", "0x10", "0o7", "1e3", "~"]),
)
structures = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=10)), inner, max_size=4),
    ),
    max_leaves=12,
)
schematic_like = st.fixed_dictionaries(
    {},
    optional={
        "customization": st.fixed_dictionaries(
            {},
            optional={
                "extraKernelArgs": st.one_of(st.lists(st.text(max_size=20), max_size=4), structures),
                "meta": st.one_of(
                    st.lists(st.fixed_dictionaries({"key": st.integers(-5, 300), "value": scalars}), max_size=3),
                    structures,
                ),
                "systemExtensions": st.fixed_dictionaries(
                    {}, optional={"officialExtensions": st.one_of(st.lists(st.text(max_size=20)), structures)}
                ),
                "secureboot": structures,
                "bootloader": scalars,
                "diskImage": st.one_of(st.fixed_dictionaries({"sectorSize": scalars}), structures),
            },
        ),
        "overlay": structures,
        "owner": scalars,
    },
)


def dump(value: Any, style: str) -> str:
    if style == "json":
        return json.dumps(value, default=str)
    return yaml.safe_dump(value, default_flow_style=style == "flow", allow_unicode=True)


NOISE = st.one_of(st.sampled_from(YAML_NOISE), st.text(max_size=3))
NOISE_DOCUMENT = st.lists(st.one_of(st.sampled_from(YAML_NOISE + KEYS), st.text(max_size=4))).map("".join)
STYLES = st.sampled_from(["block", "flow", "json"])


@st.composite
def mutated(draw: st.DrawFn, text: str) -> bytes:
    """Break a well-formed document in small ways: cut it, splice in YAML syntax, change a byte."""
    data = text
    for _ in range(draw(st.integers(0, 3))):
        at = draw(st.integers(0, len(data)))
        op = draw(st.sampled_from(["insert", "cut", "delete"]))
        if op == "insert":
            data = data[:at] + draw(NOISE) + data[at:]
        elif op == "cut":
            data = data[:at]
        else:
            data = data[:at] + data[at + 1 :]
    return data.encode("utf-8", "surrogatepass")


@st.composite
def schematic_bodies(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["bytes", "text", "structure", "schematic", "noise"]))
    if kind == "bytes":
        return draw(st.binary(max_size=2048))
    if kind == "text":
        return draw(st.text(max_size=1000)).encode("utf-8", "surrogatepass")
    if kind == "noise":
        return draw(NOISE_DOCUMENT).encode()
    value = draw(structures if kind == "structure" else schematic_like)
    return draw(mutated(dump(value, draw(STYLES))))


def test_schematic_parser_never_fails_with_5xx(target: Target) -> None:
    statuses: list[int] = []

    @settings(FUZZ, max_examples=60)
    @given(st.lists(schematic_bodies(), min_size=BATCH, max_size=BATCH))
    def check(bodies: list[bytes]) -> None:
        replies = target.client.send([Req("POST", "/schematics", body) for body in bodies])
        for reply in replies:
            assert_clean(reply)
            assert reply.status in (201, 400), reply
            statuses.append(reply.status)
        created = [json.loads(r.body)["id"] for r in replies if r.status == 201][:5]
        for reply in target.client.send([Req("GET", f"/schematics/{sid}") for sid in created]):
            assert reply.status == 200, reply  # what was accepted can be read back

    check()
    assert len(statuses) >= 3000
    assert {201, 400} <= set(statuses)


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 100_000,  # nesting bombs, inside the size limit
        b"a:\n" + b"".join(b" " * i + b"- \n" for i in range(2000)),
        b"a: &a [" + b",".join([b"*a"] * 10) + b"]\n",  # an alias that contains itself
        # "billion laughs": nine levels of ten aliases each
        b"l0: &l0 [x, x, x, x, x, x, x, x, x, x]\n"
        + b"".join(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]\n".encode() for i in range(1, 10))
        + b"customization:\n  extraKernelArgs: *l9\n",
        b"customization:\n  extraKernelArgs: [" + b"x," * 50_000 + b"]\n",  # linear: ~30 µs an item
        b"\xff\xfe" + "customization: {}".encode("utf-16-le"),
        b"--- !!python/object/apply:os.system ['true']\n",
        b"customization: !!binary aGVsbG8=\n",
    ],
    ids=["flow-nesting", "block-nesting", "self-alias", "billion-laughs", "wide", "utf16", "python-tag", "binary"],
)
def test_hostile_schematics_are_refused_quickly(target: Target, body: bytes) -> None:
    started = time.monotonic()
    (reply,) = target.client.send([Req("POST", "/schematics", body)])
    assert_clean(reply)
    assert reply.status in (201, 400, 413), reply
    assert time.monotonic() - started < 10


# --- headers: ?filename= and Range on a cached asset --------------------------------------------


@pytest.fixture(scope="module")
def cached_asset(target: Target) -> tuple[str, bytes, frozenset[str]]:
    """A small built asset (the cmdline), its bytes and the header names of a plain download."""
    path = f"/image/{target.sid}/v1.12.1/cmdline-metal-amd64"
    (reply,) = target.client.send([Req("GET", path)])
    assert reply.status == 200, reply
    return path, reply.body, frozenset(k.lower() for k in reply.headers)


DISPOSITION = re.compile(
    r'^attachment; filename="([ !#-\[\]-~]*)"(?:; filename\*=UTF-8\'\'([A-Za-z0-9%!#$&+\-.^_`|~]+))?$'
)


def filenames() -> st.SearchStrategy[str]:
    return st.one_of(
        st.text(st.characters(exclude_categories=["Cs"]), min_size=0, max_size=30),
        st.text(st.characters(exclude_categories=["Cs", "Cc"]), min_size=0, max_size=30),
        st.text('"\\;\r\n\t =%\x00\x7f\u0085\u2028ä✓', max_size=12),
        st.sampled_from(['a"; filename="evil.sh', "x\r\nSet-Cookie: a=b", "x\nX-Injected: 1", "ok.iso", "%0d%0a"]),
    )


def test_filename_cannot_inject_headers(target: Target, cached_asset: tuple[str, bytes, frozenset[str]]) -> None:
    path, body, names = cached_asset
    checked: list[str] = []
    refused: list[str] = []

    @settings(FUZZ, max_examples=24)
    @given(st.lists(filenames(), min_size=BATCH, max_size=BATCH))
    def check(names_to_try: list[str]) -> None:
        requests = [Req("GET", f"{path}?filename={quote(n, safe='')}") for n in names_to_try]
        for name, reply in zip(names_to_try, target.client.send(requests), strict=True):
            assert_clean(reply)
            if reply.status == 400:
                refused.append(name)
                assert any(ord(ch) < 0x20 or 0x7F <= ord(ch) <= 0x9F for ch in name), (name, reply.body)
                continue
            assert reply.status == 200 and reply.body == body, (name, reply)
            assert frozenset(k.lower() for k in reply.headers) == names, (name, reply.headers)
            (value,) = reply.headers.getall("Content-Disposition")
            match = DISPOSITION.match(value)
            assert match is not None, (name, value)
            plain, extended = match.groups()
            expected = name or path.rsplit("/", 1)[1]  # an empty filename= is no filename=
            assert unquote(extended, errors="strict") == expected if extended else plain == expected, (name, value)
            checked.append(name)

    check()
    assert len(checked) >= 600 and len(refused) >= 100, (len(checked), len(refused))


def ranges() -> st.SearchStrategy[str]:
    number = st.one_of(
        st.just(""), st.integers(0, 300).map(str), st.sampled_from(["-1", "99999999999999999999", "1e3"])
    )
    return st.one_of(
        st.builds(lambda a, b: f"bytes={a}-{b}", number, number),
        st.builds(lambda a, b, c: f"bytes={a}-{b},{c}-", number, number, number),
        st.builds(lambda u, a: f"{u}={a}-", st.sampled_from(["bits", "Bytes", " bytes", "bytes "]), number),
        st.text(string.printable.strip("\r\n\x0b\x0c"), max_size=20),
    )


def test_ranges_are_self_consistent(target: Target, cached_asset: tuple[str, bytes, frozenset[str]]) -> None:
    path, body, _ = cached_asset
    size = len(body)
    answered: list[int] = []

    @settings(FUZZ, max_examples=14)
    @given(st.lists(ranges(), min_size=BATCH, max_size=BATCH))
    def check(headers: list[str]) -> None:
        requests = [Req("GET", path, headers=(("Range", h),)) for h in headers]
        for reply in target.client.send(requests):
            assert_clean(reply)
            answered.append(reply.status)
            if reply.status == 200:
                assert reply.body == body
            elif reply.status == 206:
                first, last, total = map(int, re.findall(r"\d+", reply.headers["Content-Range"]))
                assert total == size and 0 <= first <= last < size, reply
                assert reply.body == body[first : last + 1], reply
            else:
                assert reply.status == 416 and reply.headers["Content-Range"] == f"bytes */{size}", reply

    check()
    assert len(answered) >= 700
    assert {200, 206, 416} <= set(answered)


# --- limits and traversal -------------------------------------------------------------------------


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


def test_oversized_bodies_get_413(demo_mesh: Mesh) -> None:
    limit = demo_mesh.config.http.max_body_bytes
    body = b"customization: {}\n" + b"#" * limit
    status, _, text = post_raw(demo_mesh, body)
    assert (status, text) == (413, b"request body too large\n")
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (body[:1000], body[1000:])) + b"0\r\n\r\n"
    response = raw_exchange(
        demo_mesh,
        b"POST /schematics HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked,
    )
    assert status_of(response) == 413, response[:300]
    # Just below the limit is parsed and accepted: the limit is exact, not a rough guess.
    status, _, text = post_raw(demo_mesh, b"customization: {}\n" + b"#" * (limit - 100))
    assert status == 201, text


def post_raw(mesh: Mesh, body: bytes) -> tuple[int, dict[str, str], bytes]:
    head = b"POST /schematics HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: %d\r\n\r\n" % len(body)
    response = raw_exchange(mesh, head + body)
    header_block, _, payload = response.partition(b"\r\n\r\n")
    lines = header_block.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split(" ")[1]), headers, payload


TRAVERSALS = [
    "/talosctl/v1.12.1/..",
    "/talosctl/v1.12.1/%2e%2e",
    "/talosctl/v1.12.1/..%2f..%2f..%2fetc%2fpasswd",
    "/talosctl/v1.12.1/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "/talosctl/v1.12.1/..%5c..%5cetc%5cpasswd",
    "/talosctl/v1.12.1/%252e%252e%252fetc%252fpasswd",
    "/talosctl/v1.12.1/talosctl-linux-amd64%2f..%2f..%2f..%2fetc%2fpasswd",
    "/talosctl/v1.12.1/../../../../etc/passwd",
    "/talosctl/..%2f..%2fetc/passwd",
    "/talosctl/%2e%2e/talosctl-linux-amd64",
    "/image/{sid}/v1.12.1/..%2f..%2f..%2fetc%2fpasswd",
    "/image/{sid}/v1.12.1/%2e%2e",
    "/image/{sid}/v1.12.1/../../../etc/passwd",
    "/image/{sid}/..%2fv1.12.1/kernel-amd64",
    "/image/..%2f..%2f{sid}/v1.12.1/kernel-amd64",
    "/image/%2e%2e/v1.12.1/kernel-amd64",
    "/pxe/{sid}/v1.12.1/..%2fmetal-amd64",
    "/v2/installer/{sid}/blobs/..%2f..%2f..%2fetc%2fpasswd",
    "/v2/installer/{sid}/blobs/sha256:..%2f..%2fmeta.json",
    "/v2/installer/{sid}/manifests/..%2f..%2f..",
    "/v2/installer/..%2f..%2f{sid}/manifests/v1.12.1",
    "/v2/siderolabs/../../etc/manifests/passwd",
    "/v2/siderolabs/installer/blobs/..%2f..%2fetc%2fpasswd",
    "/v2/siderolabs/%2e%2e/manifests/v1.12.1",
    "/v2/../../../etc/passwd",
    "/schematics/..%2f..%2f{sid}",
    "/schematics/%2e%2e",
    "/version/..%2f..%2fetc/extensions/official",
]


def test_path_traversal_is_refused(demo_mesh: Mesh, target: Target) -> None:
    """Raw request lines (no client-side normalization): every answer is a 400 or a 404."""
    for raw in TRAVERSALS:
        path = raw.format(sid=target.sid)
        response = raw_exchange(demo_mesh, f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        status = status_of(response)
        assert status in (400, 404), (path, response[:400])
        assert b"root:" not in response, path
