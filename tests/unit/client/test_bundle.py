"""Air-gap bundles: export from the fake factory with a real signed cache, verify offline, serve statically."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from devtools.demo_release.signing import load_cosign_key
from imagefactory_client import AsyncClient
from imagefactory_client.bundle import KEY_PATH, MANIFEST, SUMS, ExportRequest, export_bundle, verify_bundle
from services.cache.fs_store import FilesystemStore
from services.cache.model import PutRequest, Signature
from services.signer.cosign import sign_cosign
from services.signer.keys import CosignKey
from tests.unit.client.fake_factory import EXTENSIONS, ISO, KERNEL, SCHEMATIC, SCHEMATIC_ID, FakeFactory

ASSETS = ("metal-amd64.iso", "kernel-amd64")


class KeySigner:
    """The cache's Signer protocol over a local key (the signer service's own signing code)."""

    def __init__(self, key: CosignKey) -> None:
        self.key = key

    async def sign(self, reference: str, digest: str) -> Signature:
        payload, signature = sign_cosign(self.key, reference, digest)
        return Signature(payload=payload, signature_base64=signature)

    async def verify(self, signature: Signature, expected_digest: str) -> str | None:
        return None


@pytest.fixture
def key(tmp_path: Path) -> CosignKey:
    return load_cosign_key(tmp_path / "keys" / "cosign.pem", generate=True)


@pytest.fixture
async def cache_dir(tmp_path: Path, key: CosignKey) -> Path:
    """A real filesystem cache holding both assets, signed the way the factory signs them."""
    store = FilesystemStore(tmp_path / "cache", KeySigner(key), max_asset_bytes=1 << 24)
    store.prepare()
    for name, data in (("metal-amd64.iso", ISO), ("kernel-amd64", KERNEL), ("other", b"unrelated")):

        async def chunks(data: bytes = data) -> AsyncIterator[bytes]:
            yield data

        asset_key = hashlib.sha256(name.encode()).hexdigest()
        await store.put(PutRequest(key=asset_key, media_type="application/octet-stream", file_name=name), chunks())
    return tmp_path / "cache"


@pytest.fixture
def signed_factory(factory: FakeFactory, key: CosignKey) -> FakeFactory:
    factory.public_key = key.public_key_pem()
    return factory


async def export(client: AsyncClient, out: Path, cache: Path | None) -> Any:
    request = ExportRequest([SCHEMATIC_ID], ["1.12.1"], list(ASSETS), cache)
    return await export_bundle(client, out, request)


async def test_export_lays_out_factory_urls_and_verifies_offline(
    client: AsyncClient, signed_factory: FakeFactory, cache_dir: Path, tmp_path: Path, key: CosignKey
) -> None:
    out = tmp_path / "bundle"
    manifest = await export(client, out, cache_dir)
    assert (out / "schematics" / SCHEMATIC_ID).read_bytes() == SCHEMATIC
    assert (out / "image" / SCHEMATIC_ID / "v1.12.1" / "metal-amd64.iso").read_bytes() == ISO
    assert (out / "image" / SCHEMATIC_ID / "v1.12.1" / "kernel-amd64").read_bytes() == KERNEL
    assert json.loads((out / "versions").read_bytes()) == ["v1.12.1"]
    assert json.loads((out / "version/v1.12.1/extensions/official").read_bytes()) == EXTENSIONS
    assert (out / KEY_PATH).read_bytes() == key.public_key_pem()
    assert not (out / "secureboot").exists()  # the fake has Secure Boot disabled
    assert manifest.factory == client.base_url and manifest.versions == ["v1.12.1"]
    signed = {f.path: f.signature for f in manifest.files if f.signature}
    assert sorted(signed) == sorted(f"image/{SCHEMATIC_ID}/v1.12.1/{a}" for a in ASSETS)
    sums = (out / SUMS).read_text().splitlines()
    assert f"{hashlib.sha256(ISO).hexdigest()}  image/{SCHEMATIC_ID}/v1.12.1/metal-amd64.iso" in sums

    report = verify_bundle(out, public_key=key.public_key_pem(), require_signatures=True)
    assert report.ok, report.problems
    assert (report.signed, report.unsigned) == (2, [])
    assert report.files == len(manifest.files)


async def test_a_bundle_served_statically_answers_the_factory_urls(
    client: AsyncClient, signed_factory: FakeFactory, cache_dir: Path, tmp_path: Path, aiohttp_server: Any
) -> None:
    out = tmp_path / "bundle"
    await export(client, out, cache_dir)
    app = web.Application()
    app.router.add_static("/", out)
    server = await aiohttp_server(app)
    async with AsyncClient(str(server.make_url(""))) as mirror:
        assert await mirror.get_schematic(SCHEMATIC_ID) == SCHEMATIC.decode()
        assert await mirror.versions() == ["v1.12.1"]
        assert [e.name for e in await mirror.extensions("v1.12.1")] == ["siderolabs/gvisor"]
        assert await mirror.cosign_public_key() == signed_factory.public_key
        result = await mirror.download(SCHEMATIC_ID, "v1.12.1", "metal-amd64.iso", tmp_path / "iso")
        assert result.sha256 == hashlib.sha256(ISO).hexdigest()


async def test_re_export_skips_complete_assets(
    client: AsyncClient, signed_factory: FakeFactory, cache_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "bundle"
    await export(client, out, cache_dir)
    signed_factory.requests.clear()
    await export(client, out, cache_dir)
    image_requests = [m for m, p, _ in signed_factory.requests if p.startswith("/image/")]
    assert image_requests == ["HEAD", "HEAD"]


async def test_verify_finds_every_kind_of_tampering(
    client: AsyncClient, signed_factory: FakeFactory, cache_dir: Path, tmp_path: Path, key: CosignKey
) -> None:
    pristine = tmp_path / "pristine"
    await export(client, pristine, cache_dir)
    iso = f"image/{SCHEMATIC_ID}/v1.12.1/metal-amd64.iso"
    kernel = f"image/{SCHEMATIC_ID}/v1.12.1/kernel-amd64"

    def copy(name: str) -> Path:
        target = tmp_path / name
        shutil.copytree(pristine, target)
        return target

    def problems(root: Path, **kwargs: Any) -> list[str]:
        return verify_bundle(root, **kwargs).problems

    changed = copy("changed")
    (changed / iso).write_bytes(ISO[:-1] + b"!")
    assert problems(changed) == [
        f"{iso}: sha256 {hashlib.sha256(ISO[:-1] + b'!').hexdigest()}, manifest says {hashlib.sha256(ISO).hexdigest()}"
    ]

    # Rewriting the manifest to match tampered bytes does not help: the factory's signature does not.
    rewritten = copy("rewritten")
    (rewritten / iso).write_bytes(b"evil")
    manifest = json.loads((rewritten / MANIFEST).read_bytes())
    for entry in manifest["files"]:
        if entry["path"] == iso:
            entry.update(size=4, sha256=hashlib.sha256(b"evil").hexdigest())
    (rewritten / MANIFEST).write_text(json.dumps(manifest))
    assert [p.split(": ")[0] for p in problems(rewritten)] == [iso]
    assert "signed metadata is for sha256:" in problems(rewritten)[0]

    swapped = copy("swapped")
    entries = {e["path"]: e for e in json.loads((swapped / MANIFEST).read_bytes())["files"]}
    kernel_sig = swapped / entries[kernel]["signature"]["sig"]
    shutil.copyfile(kernel_sig, swapped / entries[iso]["signature"]["sig"])
    found = problems(swapped)
    assert len(found) == 1 and found[0].startswith(f"{iso}: cosign payload is for digest sha256:")

    other_key = load_cosign_key(tmp_path / "other" / "cosign.pem", generate=True)
    assert sorted(problems(pristine, public_key=other_key.public_key_pem())) == [
        f"{kernel}: invalid cosign signature",
        f"{iso}: invalid cosign signature",
    ]

    extra = copy("extra")
    (extra / "image" / SCHEMATIC_ID / "v1.12.1" / "metal-amd64.raw.xz").write_bytes(b"unlisted")
    assert problems(extra) == [f"image/{SCHEMATIC_ID}/v1.12.1/metal-amd64.raw.xz: not in the manifest"]

    schematic = copy("schematic")
    body = b"customization: {}\n"
    (schematic / "schematics" / SCHEMATIC_ID).write_bytes(body)
    manifest = json.loads((schematic / MANIFEST).read_bytes())
    for entry in manifest["files"]:
        if entry["path"] == f"schematics/{SCHEMATIC_ID}":
            entry.update(size=len(body), sha256=hashlib.sha256(body).hexdigest())
    (schematic / MANIFEST).write_text(json.dumps(manifest))
    assert problems(schematic) == [f"schematics/{SCHEMATIC_ID}: the schematic does not hash to its ID"]

    escape = copy("escape")
    manifest = json.loads((escape / MANIFEST).read_bytes())
    manifest["files"][0]["path"] = "../pristine/versions"
    (escape / MANIFEST).write_text(json.dumps(manifest))
    assert "../pristine/versions: path leaves the bundle" in problems(escape)

    assert problems(tmp_path / "nowhere") == [f"{MANIFEST}: No such file or directory"]


async def test_without_the_cache_assets_are_digest_only(
    client: AsyncClient, signed_factory: FakeFactory, tmp_path: Path
) -> None:
    out = tmp_path / "bundle"
    manifest = await export(client, out, None)
    assert not any(f.signature for f in manifest.files) and not (out / "signatures").exists()
    report = verify_bundle(out)
    assert report.ok and report.signed == 0 and len(report.unsigned) == 2
    strict = verify_bundle(out, require_signatures=True)
    assert sorted(strict.problems) == sorted(f"image/{SCHEMATIC_ID}/v1.12.1/{a}: not signed" for a in ASSETS)


@pytest.mark.parametrize(
    ("schematics", "versions", "assets", "message"),
    [
        (["nope"], ["v1.12.1"], ["kernel-amd64"], "invalid schematic ID"),
        ([SCHEMATIC_ID], ["v1.12.1/.."], ["kernel-amd64"], "invalid version"),
        ([SCHEMATIC_ID], ["v1.12.1"], ["../x"], "invalid asset path"),
    ],
)
async def test_export_refuses_names_that_are_not_one_segment(
    client: AsyncClient, tmp_path: Path, schematics: list[str], versions: list[str], assets: list[str], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        await export_bundle(client, tmp_path / "b", ExportRequest(schematics, versions, assets))
