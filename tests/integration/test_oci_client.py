"""RegistryClient against a real distribution registry, a real token flow, skopeo, and fakes.

Tests marked `registry` use the `docker-registry` fixtures from conftest.py. The few that need a
misbehaving registry (native referrers API, ignored `Range`, 5xx) use an in-process aiohttp fake,
because distribution 2.8 cannot be made to misbehave that way.
"""

from __future__ import annotations

import asyncio
import gzip
import io
import json
import os
import shlex
import tarfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from pytest_aiohttp import AiohttpServer

from services.shared.errors import (
    InvalidArgument,
    NotFound,
    PayloadTooLarge,
    UpstreamUnavailable,
    VerificationFailed,
)
from services.shared.oci import (
    CHUNK_SIZE,
    AccessDenied,
    Descriptor,
    Platform,
    RegistryClient,
    digest_of,
    index_bytes,
    referrers_tag,
)
from services.shared.oci import media_types as mt
from services.shared.oci.auth import TokenCache, parse_challenges
from tests.support.registry import PASSWORD, USERNAME, RegistryServer, TokenServer, require_tool

MiB = 1 << 20


# --- helpers ---------------------------------------------------------------------------------


class RequestLog:
    """Counts the requests a client sends, via aiohttp tracing (to prove skips and caching)."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str]] = []
        self.config = aiohttp.TraceConfig()
        self.config.on_request_start.append(self._on_start)

    async def _on_start(
        self, session: aiohttp.ClientSession, ctx: Any, params: aiohttp.TraceRequestStartParams
    ) -> None:
        self.requests.append((params.method, params.url.path))

    def count(self, method: str, path_part: str = "") -> int:
        return sum(1 for m, p in self.requests if m == method and path_part in p)


@pytest.fixture
async def traced() -> AsyncIterator[tuple[aiohttp.ClientSession, RequestLog]]:
    log = RequestLog()
    async with aiohttp.ClientSession(trace_configs=[log.config]) as session:
        yield session, log


def new_repo(prefix: str = "test") -> str:
    return f"{prefix}/{uuid.uuid4().hex[:12]}"


def client_for(server: RegistryServer, **kwargs: Any) -> RegistryClient:
    return RegistryClient(server.host, insecure=True, **kwargs)


def manifest_bytes(
    config: Descriptor,
    layers: list[Descriptor],
    *,
    media_type: str = mt.OCI_MANIFEST,
    extra: dict[str, Any] | None = None,
) -> bytes:
    obj: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": config.to_json(),
        "layers": [layer.to_json() for layer in layers],
        **(extra or {}),
    }
    return json.dumps(obj, separators=(",", ":")).encode()


async def push_image(
    client: RegistryClient,
    repo: str,
    layer: bytes,
    *,
    arch: str = "amd64",
    docker: bool = False,
    layer_type: str = mt.OCI_LAYER_GZIP,
    extra: dict[str, Any] | None = None,
) -> bytes:
    """Push a one-layer image's blobs; returns its manifest bytes (not pushed)."""
    config = json.dumps({"architecture": arch, "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}})
    config_digest = await client.push_blob(repo, config.encode())
    layer_digest = await client.push_blob(repo, layer)
    config_type = mt.DOCKER_CONFIG if docker else mt.OCI_CONFIG
    return manifest_bytes(
        Descriptor(config_type, config_digest, len(config)),
        [Descriptor(layer_type, layer_digest, len(layer))],
        media_type=mt.DOCKER_MANIFEST if docker else mt.OCI_MANIFEST,
        extra=extra,
    )


async def chunks_of(data: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def corrupt_last_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))


async def run(*argv: str) -> bytes:
    proc = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await proc.communicate()
    assert proc.returncode == 0, f"{shlex.join(argv)} exited {proc.returncode}: {err.decode()[-2000:]}"
    return out


# --- blobs -----------------------------------------------------------------------------------


@pytest.mark.registry
async def test_push_small_blob_and_skip_existing(
    registry: RegistryServer, traced: tuple[aiohttp.ClientSession, RequestLog]
) -> None:
    session, log = traced
    client = client_for(registry, session=session)
    repo, data = new_repo(), b"schematic: yaml\n"
    digest = await client.push_blob(repo, data)
    assert digest == digest_of(data)
    assert await client.head_blob(repo, digest) == len(data)
    assert await client.get_blob(repo, digest) == data
    # Monolithic: one POST and one PUT, no PATCH.
    assert (log.count("POST"), log.count("PUT"), log.count("PATCH")) == (1, 1, 0)

    log.requests.clear()
    assert await client.push_blob(repo, data) == digest
    assert log.requests == [("HEAD", f"/v2/{repo}/blobs/{digest}")]


@pytest.mark.registry
async def test_push_stream_chunked_and_read_back_in_chunks(
    registry: RegistryServer, traced: tuple[aiohttp.ClientSession, RequestLog]
) -> None:
    session, log = traced
    client = client_for(registry, session=session)
    repo = new_repo()
    data = os.urandom(5 * MiB + 123)
    digest = await client.push_blob(repo, chunks_of(data, 256 * 1024))
    assert digest == digest_of(data)
    # Five 1 MiB PATCHes; the last 123 bytes go with the final PUT.
    assert log.count("PATCH") == 5
    assert await client.head_blob(repo, digest) == len(data)

    received: list[bytes] = []
    async with client.open_blob(repo, digest) as blob:
        assert blob.size == len(data)
        async for chunk in blob:
            assert 0 < len(chunk) <= CHUNK_SIZE
            received.append(chunk)
    assert b"".join(received) == data
    assert len(received) == 6


@pytest.mark.registry
async def test_push_stream_with_wrong_declared_digest_stores_nothing(registry: RegistryServer) -> None:
    async with client_for(registry) as client:
        repo, data = new_repo(), os.urandom(2 * MiB)
        wrong = digest_of(b"something else")
        with pytest.raises(VerificationFailed, match="not the declared"):
            await client.push_blob(repo, chunks_of(data, MiB), wrong)
        assert await client.head_blob(repo, digest_of(data)) is None
        with pytest.raises(VerificationFailed):
            await client.push_blob(repo, data, wrong)


@pytest.mark.registry
async def test_push_stream_with_known_digest_does_not_read_the_stream(registry: RegistryServer) -> None:
    async with client_for(registry) as client:
        repo, data = new_repo(), b"already there"
        digest = await client.push_blob(repo, data)

        async def must_not_be_read() -> AsyncIterator[bytes]:
            raise AssertionError("stream consumed although the blob exists")
            yield b""  # pragma: no cover

        assert await client.push_blob(repo, must_not_be_read(), digest) == digest


@pytest.mark.registry
async def test_cross_repository_mount(
    registry: RegistryServer, traced: tuple[aiohttp.ClientSession, RequestLog]
) -> None:
    session, log = traced
    client = client_for(registry, session=session)
    source, target, data = new_repo(), new_repo(), os.urandom(1000)
    digest = await client.push_blob(source, data)
    log.requests.clear()
    assert await client.push_blob(target, data, mount_from=source) == digest
    assert log.count("PUT") == 0  # mounted, not uploaded
    assert await client.get_blob(target, digest) == data


@pytest.mark.registry
async def test_range_reads(registry: RegistryServer) -> None:
    async with client_for(registry) as client:
        repo, data = new_repo(), os.urandom(2 * MiB + MiB // 2)
        digest = await client.push_blob(repo, data)

        async def read(offset: int, length: int | None) -> tuple[bytes, int | None]:
            async with client.open_blob(repo, digest, offset, length) as blob:
                return b"".join([c async for c in blob]), blob.size

        assert await read(1000, 5000) == (data[1000:6000], len(data))
        assert (await read(2 * MiB + 5, None))[0] == data[2 * MiB + 5 :]
        assert (await read(len(data) - 10, 100))[0] == data[-10:]  # clamped at the end
        assert (await read(0, 3 * MiB))[0] == data
        with pytest.raises(InvalidArgument):
            await read(len(data) + 10, None)
        with pytest.raises(InvalidArgument):
            client.open_blob(repo, digest, 0, 0)


@pytest.mark.registry
async def test_tampered_blob_is_refused_before_its_last_chunk(registry: RegistryServer) -> None:
    async with client_for(registry) as client:
        repo, data = new_repo(), os.urandom(3 * MiB)
        digest = await client.push_blob(repo, data)
        corrupt_last_byte(registry.blob_path(digest))

        received = bytearray()
        with pytest.raises(VerificationFailed, match=digest):
            async with client.open_blob(repo, digest) as blob:
                async for chunk in blob:
                    received += chunk
        # The consumer got everything but the final chunk, which held the tampered byte.
        assert bytes(received) == data[: 2 * MiB]
        with pytest.raises(VerificationFailed):
            await client.get_blob(repo, digest)


@pytest.mark.registry
async def test_get_blob_refuses_large_blobs(registry: RegistryServer) -> None:
    async with client_for(registry) as client:
        repo, data = new_repo(), os.urandom(MiB + 1)
        digest = await client.push_blob(repo, data)
        with pytest.raises(PayloadTooLarge):
            await client.get_blob(repo, digest, max_size=MiB)


# --- manifests -------------------------------------------------------------------------------


@pytest.mark.registry
async def test_oci_manifest_by_tag_and_digest(registry: RegistryServer) -> None:
    async with client_for(registry) as client:
        repo = new_repo()
        body = await push_image(client, repo, b"layer bytes", extra={"annotations": {"a": "b"}})
        digest = await client.put_manifest(repo, "v1.9.0", body, mt.OCI_MANIFEST)
        assert digest == digest_of(body)

        by_tag = await client.get_manifest(repo, "v1.9.0")
        by_digest = await client.get_manifest(repo, digest)
        assert by_tag == by_digest
        assert (by_tag.data, by_tag.media_type, by_tag.digest) == (body, mt.OCI_MANIFEST, digest)
        assert [layer.media_type for layer in by_tag.layers()] == [mt.OCI_LAYER_GZIP]
        assert by_tag.config().media_type == mt.OCI_CONFIG

        head = await client.head_manifest(repo, "v1.9.0")
        assert head == Descriptor(mt.OCI_MANIFEST, digest, len(body))
        assert await client.head_manifest(repo, "v0.0.0") is None


@pytest.mark.registry
async def test_docker_manifest_like_a_schematic(registry: RegistryServer) -> None:
    """Spec §6.5: a Docker schema-2 manifest whose one layer is the schematic YAML."""
    async with client_for(registry) as client:
        repo, schematic = new_repo("schematics"), b"customization: {}\n"
        body = await push_image(client, repo, schematic, docker=True, layer_type=mt.SIDERO_SCHEMATIC)
        schematic_id = digest_of(schematic).removeprefix("sha256:")
        await client.put_manifest(repo, schematic_id, body, mt.DOCKER_MANIFEST)

        manifest = await client.get_manifest(repo, schematic_id)
        assert manifest.media_type == mt.DOCKER_MANIFEST
        (layer,) = manifest.layers()
        assert layer.media_type == mt.SIDERO_SCHEMATIC
        assert await client.get_blob(repo, layer.digest) == schematic
        assert await client.list_tags(repo) == [schematic_id]


@pytest.mark.registry
async def test_put_by_digest_and_delete(registry: RegistryServer) -> None:
    async with client_for(registry) as client:
        repo = new_repo()
        body = await push_image(client, repo, b"x")
        digest = await client.put_manifest(repo, digest_of(body), body, mt.OCI_MANIFEST)
        with pytest.raises(InvalidArgument):
            await client.put_manifest(repo, digest_of(b"other"), body, mt.OCI_MANIFEST)
        await client.delete_manifest(repo, digest)
        with pytest.raises(NotFound):
            await client.get_manifest(repo, digest)
        with pytest.raises(NotFound):
            await client.delete_manifest(repo, digest)
        with pytest.raises(InvalidArgument):
            await client.delete_manifest(repo, "latest")


@pytest.mark.registry
async def test_tampered_manifest_fetched_by_digest(registry: RegistryServer) -> None:
    async with client_for(registry) as client:
        repo = new_repo()
        body = await push_image(client, repo, b"x", extra={"annotations": {"note": "aaaa"}})
        digest = await client.put_manifest(repo, "v1", body, mt.OCI_MANIFEST)
        path = registry.blob_path(digest)
        path.write_bytes(path.read_bytes().replace(b"aaaa", b"bbbb"))  # still valid JSON
        with pytest.raises(VerificationFailed, match=digest):
            await client.get_manifest(repo, digest)


@pytest.mark.registry
async def test_index_resolves_to_platform_manifest(registry: RegistryServer) -> None:
    async with client_for(registry) as client:
        repo = new_repo()
        children: list[Descriptor] = []
        for arch in ("amd64", "arm64"):
            body = await push_image(client, repo, f"{arch} layer".encode(), arch=arch)
            digest = await client.put_manifest(repo, digest_of(body), body, mt.OCI_MANIFEST)
            children.append(Descriptor(mt.OCI_MANIFEST, digest, len(body), platform=Platform("linux", arch)))
        index = index_bytes(children)
        await client.put_manifest(repo, "v1.10.0", index, mt.OCI_INDEX)

        arm = await client.resolve_platform(repo, "v1.10.0", "linux", "arm64")
        assert arm.digest == children[1].digest
        assert json.loads(await client.get_blob(repo, arm.config().digest))["architecture"] == "arm64"
        with pytest.raises(NotFound, match="linux/riscv64"):
            await client.resolve_platform(repo, "v1.10.0", "linux", "riscv64")
        # A plain manifest is its own platform image.
        plain = await client.resolve_platform(repo, children[0].digest, "linux", "arm64")
        assert plain.digest == children[0].digest


@pytest.mark.registry
async def test_tags_with_page_size(registry: RegistryServer, traced: tuple[aiohttp.ClientSession, RequestLog]) -> None:
    """distribution 2.8 ignores `n` on tags/list and answers in one page; `Link` following is
    covered against a fake in test_tag_pagination_follows_link."""
    session, log = traced
    client = client_for(registry, session=session)
    repo = new_repo()
    body = await push_image(client, repo, b"x")
    tags = [f"v1.{i}.0" for i in range(7)]
    for tag in tags:
        await client.put_manifest(repo, tag, body, mt.OCI_MANIFEST)
    log.requests.clear()
    assert sorted(await client.list_tags(repo, page_size=3)) == sorted(tags)
    assert log.count("GET", "/tags/list") >= 1


@pytest.mark.registry
async def test_referrers_fall_back_to_the_referrers_tag(registry: RegistryServer) -> None:
    """distribution 2.8 has no referrers API (404), so the `sha256-<hex>` index is read."""
    async with client_for(registry) as client:
        repo = new_repo()
        subject_body = await push_image(client, repo, b"subject")
        subject = await client.put_manifest(repo, "v1", subject_body, mt.OCI_MANIFEST)
        subject_desc = {"mediaType": mt.OCI_MANIFEST, "digest": subject, "size": len(subject_body)}
        referrers: list[Descriptor] = []
        for artifact_type in (mt.SIGSTORE_BUNDLE_V03, "application/spdx+json"):
            body = await push_image(
                client, repo, artifact_type.encode(), extra={"artifactType": artifact_type, "subject": subject_desc}
            )
            digest = await client.put_manifest(repo, digest_of(body), body, mt.OCI_MANIFEST)
            referrers.append(Descriptor(mt.OCI_MANIFEST, digest, len(body), artifact_type=artifact_type))
        await client.put_manifest(repo, referrers_tag(subject), index_bytes(referrers), mt.OCI_INDEX)

        assert await client.referrers(repo, subject) == referrers
        assert await client.referrers(repo, subject, mt.SIGSTORE_BUNDLE_V03) == referrers[:1]
        assert await client.referrers(repo, referrers[0].digest) == []


@pytest.mark.registry
async def test_missing_things_are_not_found(registry: RegistryServer) -> None:
    async with client_for(registry) as client:
        repo, digest = new_repo(), digest_of(b"never pushed")
        await client.push_blob(repo, b"so the repository exists")
        with pytest.raises(NotFound, match=f"manifest {repo}:v9 not found in registry {registry.host}"):
            await client.get_manifest(repo, "v9")
        with pytest.raises(NotFound):
            await client.get_blob(repo, digest)
        with pytest.raises(NotFound):
            async with client.open_blob(repo, digest):
                pass
        with pytest.raises(NotFound):
            await client.list_tags(new_repo())
        assert await client.head_blob(repo, digest) is None
        assert await client.head_manifest(repo, digest) is None
        with pytest.raises(InvalidArgument):
            await client.get_manifest(repo, "sha256:short")


@pytest.mark.registry
async def test_stopped_registry_is_unavailable(throwaway_registry: RegistryServer) -> None:
    async with client_for(throwaway_registry) as client:
        await client.ping()
        repo = new_repo()
        digest = await client.push_blob(repo, b"x")
        throwaway_registry.stop()
        for call in (client.ping(), client.get_blob(repo, digest), client.get_manifest(repo, "v1")):
            with pytest.raises(UpstreamUnavailable) as caught:
                await call
            assert type(caught.value) is UpstreamUnavailable
            assert f"registry {throwaway_registry.host} unreachable" in caught.value.message
            assert "\n" not in caught.value.message


# --- authentication --------------------------------------------------------------------------


@pytest.mark.registry
async def test_basic_auth(auth_registry: RegistryServer) -> None:
    async with client_for(auth_registry, username=USERNAME, password=PASSWORD) as client:
        await client.ping()
        repo = new_repo()
        body = await push_image(client, repo, b"layer")
        await client.put_manifest(repo, "v1", body, mt.OCI_MANIFEST)
        assert (await client.get_manifest(repo, "v1")).data == body
    for kwargs in ({}, {"username": USERNAME, "password": "wrong"}):
        async with client_for(auth_registry, **kwargs) as client:
            with pytest.raises(AccessDenied) as caught:
                await client.get_manifest(repo, "v1")
            assert caught.value.status == 401
            assert isinstance(caught.value, UpstreamUnavailable)


@pytest.mark.registry
async def test_bearer_token_flow_and_cache(token_registry: RegistryServer, token_server: TokenServer) -> None:
    async with client_for(token_registry, username=USERNAME, password=PASSWORD) as client:
        await client.ping()
        repo = new_repo()
        body = await push_image(client, repo, b"layer")
        digest = await client.put_manifest(repo, "v1", body, mt.OCI_MANIFEST)
        asked = len(token_server.requests)
        # distribution lists the challenged actions in either order (a Go map), so compare them as sets.
        pushes = [
            set(scope.rsplit(":", 1)[1].split(","))
            for user, scopes in token_server.requests
            for scope in scopes
            if user == USERNAME and scope.startswith(f"repository:{repo}:")
        ]
        assert {"pull", "push"} in pushes
        for _ in range(5):
            assert (await client.get_manifest(repo, digest)).data == body
        assert await client.list_tags(repo) == ["v1"]
        # The pull-scope token was fetched once (HEAD before the first upload) and reused since.
        assert len(token_server.requests) == asked

    async with client_for(token_registry) as anonymous:
        before = len(token_server.requests)
        assert (await anonymous.get_manifest(repo, "v1")).digest == digest
        assert token_server.requests[before:] == [(None, [f"repository:{repo}:pull"])]
        with pytest.raises(AccessDenied):
            await anonymous.push_blob(repo, b"anonymous may not push")

    async with client_for(token_registry, username=USERNAME, password="wrong") as wrong:
        with pytest.raises(AccessDenied, match="refused credentials"):
            await wrong.get_manifest(repo, "v1")


@pytest.mark.registry
async def test_bearer_token_is_refetched_after_expiry(
    token_registry: RegistryServer, token_server: TokenServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(token_server, "expires_in", 1)
    async with client_for(token_registry, username=USERNAME, password=PASSWORD) as client:
        repo = new_repo()
        await client.push_blob(repo, b"x")
        before = len(token_server.requests)
        await client.head_blob(repo, digest_of(b"x"))
        assert len(token_server.requests) == before  # still cached
        await asyncio.sleep(1.0)
        await client.head_blob(repo, digest_of(b"x"))
        assert len(token_server.requests) == before + 1


def test_parse_challenges() -> None:
    header = 'Bearer realm="https://ghcr.io/token",service="ghcr.io",scope="repository:a/b:pull,push"'
    (challenge,) = parse_challenges(header)
    assert challenge.scheme == "bearer"
    assert dict(challenge.params) == {
        "realm": "https://ghcr.io/token",
        "service": "ghcr.io",
        "scope": "repository:a/b:pull,push",
    }
    basic, bearer = parse_challenges('Basic realm="x y", Bearer realm=https://t,error="a \\"q\\""')
    assert (basic.scheme, dict(basic.params)) == ("basic", {"realm": "x y"})
    assert dict(bearer.params) == {"realm": "https://t", "error": 'a "q"'}
    assert parse_challenges("") == []


def test_token_cache_expiry() -> None:
    now = [100.0]
    cache = TokenCache(clock=lambda: now[0])
    cache.put("repository:a:pull", "t1", 300)
    now[0] += 289
    assert cache.get("repository:a:pull") == "t1"
    now[0] += 2  # within the 10 s safety margin
    assert cache.get("repository:a:pull") is None
    assert cache.get("repository:b:pull") is None


# --- interoperability with skopeo ------------------------------------------------------------


def write_oci_layout(root: Path, tag: str) -> tuple[str, bytes]:
    """A one-image OCI layout as the image-spec describes it; returns (manifest digest, layer)."""
    tar_buffer = io.BytesIO()
    with tarfile.open(fileobj=tar_buffer, mode="w") as tar:
        payload = b"hello from an oci layout\n"
        info = tarfile.TarInfo("hello.txt")
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    layer = gzip.compress(tar_buffer.getvalue(), mtime=0)
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [digest_of(tar_buffer.getvalue())]},
        }
    ).encode()
    body = manifest_bytes(
        Descriptor(mt.OCI_CONFIG, digest_of(config), len(config)),
        [Descriptor(mt.OCI_LAYER_GZIP, digest_of(layer), len(layer))],
    )
    blobs = root / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    for blob in (config, layer, body):
        (blobs / digest_of(blob).removeprefix("sha256:")).write_bytes(blob)
    (root / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    entry = Descriptor(
        mt.OCI_MANIFEST, digest_of(body), len(body), annotations={"org.opencontainers.image.ref.name": tag}
    )
    (root / "index.json").write_bytes(index_bytes([entry]))
    return digest_of(body), layer


def layout_manifest_digest(root: Path) -> str:
    digest: str = json.loads((root / "index.json").read_text())["manifests"][0]["digest"]
    return digest


@pytest.fixture
def skopeo() -> Iterator[str]:
    yield require_tool("skopeo")


@pytest.mark.registry
async def test_skopeo_reads_what_we_push(registry: RegistryServer, skopeo: str, tmp_path: Path) -> None:
    async with client_for(registry) as client:
        repo = new_repo()
        body = await push_image(client, repo, gzip.compress(b"not really a tar", mtime=0))
        digest = await client.put_manifest(repo, "v1", body, mt.OCI_MANIFEST)
    ref = f"docker://{registry.host}/{repo}:v1"
    assert await run(skopeo, "inspect", "--raw", "--tls-verify=false", ref) == body
    inspected = json.loads(await run(skopeo, "inspect", "--tls-verify=false", ref))
    assert inspected["Digest"] == digest
    layout = tmp_path / "copy"
    await run(skopeo, "--insecure-policy", "copy", "--src-tls-verify=false", ref, f"oci:{layout}:v1")
    assert layout_manifest_digest(layout) == digest


@pytest.mark.registry
async def test_we_read_what_skopeo_pushes(registry: RegistryServer, skopeo: str, tmp_path: Path) -> None:
    digest, layer = write_oci_layout(tmp_path / "layout", "v1")
    repo = new_repo()
    await run(
        skopeo, "--insecure-policy", "copy", "--dest-tls-verify=false",
        f"oci:{tmp_path / 'layout'}:v1", f"docker://{registry.host}/{repo}:v1",
    )  # fmt: skip
    async with client_for(registry) as client:
        manifest = await client.get_manifest(repo, "v1")
        assert (manifest.digest, manifest.media_type) == (digest, mt.OCI_MANIFEST)
        (layer_desc,) = manifest.layers()
        assert await client.get_blob(repo, layer_desc.digest) == layer
        assert await client.list_tags(repo) == ["v1"]


# --- behaviour only a fake registry can show -------------------------------------------------


async def test_native_referrers_api_and_filter_header(aiohttp_server: AiohttpServer) -> None:
    subject = digest_of(b"subject")
    bundle = Descriptor(mt.OCI_MANIFEST, digest_of(b"b"), 1, artifact_type=mt.SIGSTORE_BUNDLE_V03)
    other = Descriptor(mt.OCI_MANIFEST, digest_of(b"o"), 1, artifact_type="application/other")
    seen: list[str | None] = []

    async def referrers(request: web.Request) -> web.Response:
        assert request.match_info["digest"] == subject
        wanted = request.query.get("artifactType")
        seen.append(wanted)
        found = [d for d in (bundle, other) if wanted is None or d.artifact_type == wanted]
        headers = {"OCI-Filters-Applied": "artifactType"} if wanted else {}
        return web.Response(body=index_bytes(found), content_type=mt.OCI_INDEX, headers=headers)

    app = web.Application()
    app.router.add_get("/v2/{repo:.+}/referrers/{digest}", referrers)
    server = await aiohttp_server(app)
    async with RegistryClient(f"127.0.0.1:{server.port}", insecure=True) as client:
        assert await client.referrers("a/b", subject) == [bundle, other]
        assert await client.referrers("a/b", subject, mt.SIGSTORE_BUNDLE_V03) == [bundle]
    assert seen == [None, mt.SIGSTORE_BUNDLE_V03]


async def test_range_ignored_by_server_is_sliced_locally(aiohttp_server: AiohttpServer) -> None:
    data = os.urandom(3 * MiB)
    digest = digest_of(data)

    async def blob(request: web.Request) -> web.Response:
        return web.Response(body=data)  # 200 with everything, whatever Range says

    app = web.Application()
    app.router.add_get("/v2/{repo:.+}/blobs/{digest}", blob)
    server = await aiohttp_server(app)
    async with RegistryClient(f"127.0.0.1:{server.port}", insecure=True) as client:
        async with client.open_blob("a/b", digest, MiB + 7, MiB + 3) as reader:
            assert b"".join([c async for c in reader]) == data[MiB + 7 : 2 * MiB + 10]
        async with client.open_blob("a/b", digest, 5) as reader:
            assert b"".join([c async for c in reader]) == data[5:]


async def test_server_errors_and_mismatched_headers(aiohttp_server: AiohttpServer) -> None:
    body = b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}'

    async def manifest(request: web.Request) -> web.Response:
        if request.match_info["ref"] == "broken":
            return web.json_response({"errors": [{"code": "UNKNOWN", "message": "disk on fire"}]}, status=503)
        # A tag answered with a body that does not match the digest header: a lying proxy.
        return web.Response(
            body=body, content_type=mt.OCI_MANIFEST, headers={"Docker-Content-Digest": digest_of(b"other")}
        )

    app = web.Application()
    app.router.add_route("*", "/v2/{repo:.+}/manifests/{ref}", manifest)
    server = await aiohttp_server(app)
    host = f"127.0.0.1:{server.port}"
    async with RegistryClient(host, insecure=True) as client:
        with pytest.raises(UpstreamUnavailable, match=f"registry {host} failed manifest a/b:broken: HTTP 503: UNKNOWN"):
            await client.get_manifest("a/b", "broken")
        with pytest.raises(VerificationFailed, match="header says"):
            await client.get_manifest("a/b", "v1")


async def test_tag_pagination_follows_link(aiohttp_server: AiohttpServer) -> None:
    tags = [f"v1.{i}.0" for i in range(8)]
    pages: list[tuple[str | None, str | None]] = []

    async def tag_list(request: web.Request) -> web.Response:
        # The distribution spec's pagination: `n` per page, `last` = last tag seen, Link to the next.
        n, last = request.query.get("n"), request.query.get("last")
        pages.append((n, last))
        start = tags.index(last) + 1 if last else 0
        page = tags[start : start + int(n)] if n else tags[start:]
        headers = {}
        if n and start + int(n) < len(tags):
            headers["Link"] = f'</v2/a/b/tags/list?n={n}&last={page[-1]}>; rel="next"'
        return web.json_response({"name": "a/b", "tags": page}, headers=headers)

    app = web.Application()
    app.router.add_get("/v2/a/b/tags/list", tag_list)
    server = await aiohttp_server(app)
    async with RegistryClient(f"127.0.0.1:{server.port}", insecure=True) as client:
        assert await client.list_tags("a/b", page_size=3) == tags
    assert pages == [("3", None), ("3", "v1.2.0"), ("3", "v1.5.0")]
