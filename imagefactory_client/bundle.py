"""Air-gap bundles: chosen schematics by versions by assets, laid out as the factory's own URLs.

A plain static web server whose document root is the bundle answers the factory's read-only routes
(factory spec §2), so `imagefactory --url http://mirror/ download …`, iPXE chains and `curl` keep working:

    schematics/<id>                          canonical YAML; its SHA-256 is <id> (spec §6.3)
    image/<id>/<version>/<path>              the assets
    versions                                 JSON list of the bundled versions
    version/<version>/extensions/official    the catalogs, as the factory served them
    version/<version>/overlays/official
    oci/cosign/signing-key.pub               the factory's cache-signing public key (spec §2.10)
    secureboot/signing-cert.pem              when the factory has Secure Boot enabled
    signatures/<sha256>.meta.json            the factory's signed cache metadata of an asset, and
    signatures/<sha256>.meta.sig             its cosign simple-signing signature (services/cache)
    manifest.json                            every file above: path, size, sha256, media type, signature
    SHA256SUMS                               the same digests for `sha256sum -c`

Signatures: the factory's filesystem cache signs, per asset, a metadata document (size, sha256, media
type, file name) with its cosign key (services/cache/fs_store.py). Those documents are not served over
HTTP; an export that runs where the cache lives copies them with `cache_dir` (`<state_dir>/cache`),
matched to the downloaded bytes by digest. `verify_bundle` then checks every asset against that signature
with the factory's public key, offline; pin the key with `public_key` rather than trusting the copy inside
the bundle. Without `cache_dir` the bundle holds digests only (`verify` reports the assets as unsigned).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import json
import os
import re
import shutil
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath

from imagefactory_client import transfer
from imagefactory_client.client import AsyncClient, version_tag
from imagefactory_client.errors import IntegrityError, ServerError
from imagefactory_client.transfer import Options
from services.cache.model import AssetMeta, Signature
from services.shared.errors import VerificationFailed
from services.signer.cosign import verify_cosign

FORMAT = "imagefactory-bundle/v1"
MANIFEST = "manifest.json"
SUMS = "SHA256SUMS"
KEY_PATH = "oci/cosign/signing-key.pub"
CERT_PATH = "secureboot/signing-cert.pem"
SIGNATURES = "signatures"
# Folders whose every file must be in the manifest: an extra file there would be served unverified.
STRICT_DIRS = ("image", "schematics", "version", SIGNATURES)
_SCHEMATIC_ID = re.compile(r"^[0-9a-f]{64}$")
_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")


@dataclass(frozen=True)
class SignatureRef:
    meta: str  # bundle path of the signed metadata document
    sig: str  # bundle path of its signature


@dataclass(frozen=True)
class BundleFile:
    path: str
    size: int
    sha256: str
    media_type: str = ""
    signature: SignatureRef | None = None


@dataclass
class Manifest:
    factory: str
    created: str
    schematics: list[str]
    versions: list[str]
    assets: list[str]
    files: list[BundleFile] = field(default_factory=list)
    format: str = FORMAT

    def to_json(self) -> bytes:
        return (json.dumps(asdict(self), indent=2, sort_keys=True) + "\n").encode()

    @classmethod
    def from_json(cls, data: bytes) -> Manifest:
        raw = json.loads(data)
        if raw.get("format") != FORMAT:
            raise ValueError(f"not a bundle manifest of format {FORMAT}")
        files = [
            BundleFile(
                path=str(f["path"]),
                size=int(f["size"]),
                sha256=str(f["sha256"]),
                media_type=str(f.get("media_type", "")),
                signature=SignatureRef(**f["signature"]) if f.get("signature") else None,
            )
            for f in raw["files"]
        ]
        return cls(
            factory=str(raw["factory"]),
            created=str(raw["created"]),
            schematics=[str(s) for s in raw["schematics"]],
            versions=[str(v) for v in raw["versions"]],
            assets=[str(a) for a in raw["assets"]],
            files=files,
        )


@dataclass(frozen=True)
class ExportRequest:
    schematics: Sequence[str]
    versions: Sequence[str]
    assets: Sequence[str]
    cache_dir: Path | None = None


def check_segment(kind: str, value: str) -> str:
    """One URL segment that is also a file name: no `/`, no `..`, nothing a static server would rewrite."""
    if not _SEGMENT.match(value):
        raise ValueError(f"invalid {kind} {value!r}")
    return value


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _write(root: Path, relative: str, data: bytes) -> None:
    target = root / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = target.with_name(target.name + ".tmp")
    scratch.write_bytes(data)
    scratch.replace(target)


def signed_cache_entries(cache_dir: Path) -> dict[str, Path]:
    """Asset digest ("sha256:…") → cache entry directory holding meta.json and meta.sig.

    Layout of the filesystem store: `<cache>/<key[:2]>/<key>/{blob,meta.json,meta.sig}`. Entries whose
    metadata does not parse are skipped here; whatever is copied is verified by `verify_bundle` anyway.
    """
    entries: dict[str, Path] = {}
    for meta_file in sorted(cache_dir.glob("*/*/meta.json")):
        if not (meta_file.parent / "meta.sig").is_file():
            continue
        try:
            meta = AssetMeta.from_json(meta_file.read_bytes())
        except (ValueError, KeyError, TypeError, OSError):
            continue
        entries.setdefault(meta.digest, meta_file.parent)
    return entries


async def export_bundle(
    client: AsyncClient,
    out: Path,
    request: ExportRequest,
    *,
    options_for: Callable[[str], Options] | None = None,
) -> Manifest:
    """Fetch everything into `out` (re-running resumes and skips complete assets) and write the manifest."""
    for sid in request.schematics:
        if not _SCHEMATIC_ID.match(sid):
            raise ValueError(f"invalid schematic ID {sid!r}")
    versions = [check_segment("version", version_tag(v)) for v in request.versions]
    assets = [check_segment("asset path", a) for a in request.assets]
    await asyncio.to_thread(out.mkdir, parents=True, exist_ok=True)
    small: dict[str, bytes] = {}

    for sid in request.schematics:
        body = (await client.get_schematic(sid)).encode()
        if hashlib.sha256(body).hexdigest() != sid:
            raise IntegrityError(f"schematic {sid}: the served YAML does not hash to its ID")
        small[f"schematics/{sid}"] = body
    small["versions"] = json.dumps(versions).encode()
    for version in versions:
        for catalog in ("extensions", "overlays"):
            small[f"version/{version}/{catalog}/official"] = await client.fetch("version", version, catalog, "official")
    small[KEY_PATH] = await client.cosign_public_key()
    with contextlib.suppress(ServerError):  # Secure Boot disabled on that factory: nothing to bundle
        small[CERT_PATH] = await client.secureboot_certificate()
    for relative, data in small.items():
        await asyncio.to_thread(_write, out, relative, data)

    files = [BundleFile(relative, len(data), hashlib.sha256(data).hexdigest()) for relative, data in small.items()]
    downloaded = [
        await _export_asset(client, out, sid, version, asset, options_for)
        for sid in request.schematics
        for version in versions
        for asset in assets
    ]
    # Looked up once everything is fetched: the downloads are what put cold assets into the cache.
    signed = await asyncio.to_thread(signed_cache_entries, request.cache_dir) if request.cache_dir else {}
    for entry in downloaded:
        files.append(await asyncio.to_thread(_attach_signature, out, entry, signed))

    manifest = Manifest(
        factory=client.base_url,
        created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        schematics=list(request.schematics),
        versions=versions,
        assets=assets,
        files=sorted(files, key=lambda f: f.path),
    )
    sums = "".join(f"{f.sha256}  {f.path}\n" for f in manifest.files)
    await asyncio.to_thread(_write, out, SUMS, sums.encode())
    await asyncio.to_thread(_write, out, MANIFEST, manifest.to_json())
    return manifest


async def _export_asset(
    client: AsyncClient,
    out: Path,
    sid: str,
    version: str,
    asset: str,
    options_for: Callable[[str], Options] | None,
) -> BundleFile:
    relative = f"image/{sid}/{version}/{asset}"
    dest = out / relative
    info = await client.asset_info(sid, version, asset)
    have = await asyncio.to_thread(sha256_file, dest) if dest.is_file() else None
    if have is None or info.etag != f'"sha256:{have}"':
        options = options_for(relative) if options_for else None
        have = (await transfer.download(client.session(), client.asset_url(sid, version, asset), dest, options)).sha256
    return BundleFile(relative, dest.stat().st_size, have, info.media_type)


def _attach_signature(out: Path, entry: BundleFile, signed: dict[str, Path]) -> BundleFile:
    """Copy the cache's signed metadata of these bytes into the bundle, if the cache has them."""
    source = signed.get(f"sha256:{entry.sha256}")
    if source is None:
        return entry
    signature = SignatureRef(meta=f"{SIGNATURES}/{entry.sha256}.meta.json", sig=f"{SIGNATURES}/{entry.sha256}.meta.sig")
    (out / SIGNATURES).mkdir(exist_ok=True)
    shutil.copyfile(source / "meta.json", out / signature.meta)
    shutil.copyfile(source / "meta.sig", out / signature.sig)
    return dataclasses.replace(entry, signature=signature)


@dataclass
class Report:
    files: int = 0
    signed: int = 0
    unsigned: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _inside(root: Path, relative: str) -> Path | None:
    """The file a manifest path names, or None if the path could leave the bundle."""
    pure = PurePosixPath(relative)
    if pure.is_absolute() or not pure.parts or any(p in ("", ".", "..") for p in pure.parts):
        return None
    return root.joinpath(*pure.parts)


def _check_signature(root: Path, entry: BundleFile, key: bytes) -> str | None:
    """None when the factory's signature vouches for this file's bytes, otherwise why not."""
    assert entry.signature is not None
    meta_path, sig_path = _inside(root, entry.signature.meta), _inside(root, entry.signature.sig)
    if meta_path is None or sig_path is None:
        return "signature path leaves the bundle"
    try:
        meta = AssetMeta.from_json(meta_path.read_bytes())
        signature = Signature.from_json(sig_path.read_bytes())
        verify_cosign(key, signature.payload, signature.signature_base64, meta.document_digest())
    except OSError as exc:
        return f"signature unreadable: {exc.strerror or exc}"
    except (ValueError, KeyError, TypeError):
        return "signed metadata is malformed"
    except VerificationFailed as exc:
        return exc.message
    if meta.digest != f"sha256:{entry.sha256}" or meta.size != entry.size:
        return f"signed metadata is for {meta.digest} ({meta.size} bytes), not this file"
    return None


def verify_bundle(root: Path, *, public_key: bytes | None = None, require_signatures: bool = False) -> Report:
    """Check every file against the manifest and every signed asset against the factory's key, offline.

    `public_key` (PEM) pins the key; without it the copy in the bundle is used, which proves the assets
    came from the factory holding that key only if you trust the bundle's copy.
    """
    report = Report()
    try:
        manifest = Manifest.from_json((root / MANIFEST).read_bytes())
    except OSError as exc:
        report.problems.append(f"{MANIFEST}: {exc.strerror or exc}")
        return report
    except (ValueError, KeyError, TypeError) as exc:
        report.problems.append(f"{MANIFEST}: malformed ({exc})")
        return report
    key = public_key
    if key is None:
        try:
            key = (root / KEY_PATH).read_bytes()
        except OSError:
            report.problems.append(f"{KEY_PATH}: missing, and no key given")
    listed = {f.path for f in manifest.files}
    listed |= {s for f in manifest.files if f.signature for s in (f.signature.meta, f.signature.sig)}
    for entry in manifest.files:
        report.files += 1
        problem = _check_file(root, entry)
        if problem is None and entry.path.startswith("image/"):
            if entry.signature is None:
                report.unsigned.append(entry.path)
                if require_signatures:
                    problem = "not signed"
            elif key is not None:
                problem = _check_signature(root, entry, key)
                report.signed += problem is None
        if problem:
            report.problems.append(f"{entry.path}: {problem}")
    for extra in sorted(_unlisted(root, listed)):
        report.problems.append(f"{extra}: not in the manifest")
    return report


def _check_file(root: Path, entry: BundleFile) -> str | None:
    path = _inside(root, entry.path)
    if path is None:
        return "path leaves the bundle"
    try:
        size = path.stat().st_size
    except OSError:
        return "missing"
    if size != entry.size:
        return f"size {size}, manifest says {entry.size}"
    actual = sha256_file(path)
    if actual != entry.sha256:
        return f"sha256 {actual}, manifest says {entry.sha256}"
    parts = PurePosixPath(entry.path).parts
    if parts[0] == "schematics" and actual != parts[-1]:
        return "the schematic does not hash to its ID"
    return None


def _unlisted(root: Path, listed: Iterable[str]) -> set[str]:
    known = set(listed)
    found: set[str] = set()
    for top in STRICT_DIRS:
        for dirpath, _, names in os.walk(root / top):
            for name in names:
                relative = Path(dirpath, name).relative_to(root).as_posix()
                if relative not in known:
                    found.add(relative)
    return found
