"""Real OCI registries for integration tests: Debian's `docker-registry` (distribution 2.8).

`registry` is anonymous, `auth_registry` wants HTTP basic auth (htpasswd), `token_registry` wants
bearer tokens from `token_server`. No real token server is packaged for Debian, so `token_server`
is a fake: a small in-process issuer of ES256 JWTs that the real registry verifies against our
self-signed certificate (`auth.token.rootcertbundle`), which exercises the real challenge flow.

A test that uses any of them is marked `@pytest.mark.registry`. Without `docker-registry` on PATH
they skip, except in CI (env `CI` set), where a missing tool is a setup bug and fails loudly.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import json
import os
import shutil
import threading
import time
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

from devtools import local_registry
from devtools.local_registry import RegistryServer as RegistryServer  # re-exported for the tests

READY_TIMEOUT = 10.0
USERNAME = "factory"
PASSWORD = "s3cret-pass"
TOKEN_SERVICE = "test-registry"
TOKEN_ISSUER = "test-token-issuer"


def require_tool(name: str) -> str:
    """Path of `name`; skip without it, but fail in CI where the image must have it."""
    path = shutil.which(name)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is not on PATH; CI installs it (apt-get install {name})")
        pytest.skip(f"{name} is not on PATH")
    return path


def start_registry(workdir: Path, *, auth: dict[str, Any] | None = None) -> RegistryServer:
    """The devtools registry, skipped without the binary (failed in CI) and failed if it won't start."""
    require_tool("docker-registry")
    try:
        return local_registry.start_registry(workdir, auth=auth)
    except local_registry.RegistryError as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    server = start_registry(tmp_path_factory.mktemp("registry"))
    yield server
    server.stop()


@pytest.fixture
def throwaway_registry(tmp_path: Path) -> Iterator[RegistryServer]:
    """A private registry a test may stop."""
    server = start_registry(tmp_path)
    yield server
    server.stop()


def _bcrypt(password: str) -> str:
    # Python 3.11's stdlib `crypt` reaches glibc's libxcrypt, which does bcrypt: no new dependency.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            import crypt
        except ImportError:
            pytest.skip("no stdlib crypt module to make a bcrypt htpasswd entry")
        hashed = crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH))
    if not hashed or not hashed.startswith("$2"):
        pytest.skip("libcrypt cannot make bcrypt hashes")
    return hashed


@pytest.fixture(scope="session")
def auth_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    """A registry that wants HTTP basic auth as USERNAME/PASSWORD (htpasswd, bcrypt)."""
    workdir = tmp_path_factory.mktemp("auth-registry")
    htpasswd = workdir / "htpasswd"
    htpasswd.write_text(f"{USERNAME}:{_bcrypt(PASSWORD)}\n")
    server = start_registry(workdir, auth={"htpasswd": {"realm": "test", "path": str(htpasswd)}})
    yield server
    server.stop()


# --- bearer tokens ---------------------------------------------------------------------------


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class TokenServer:
    """Fake token issuer: anonymous callers get pull only, USERNAME/PASSWORD get what they ask for."""

    url: str = ""
    expires_in: int = 300
    requests: list[tuple[str | None, list[str]]] = field(default_factory=list)  # (user, scopes)
    key: ec.EllipticCurvePrivateKey = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))
    cert: x509.Certificate | None = None
    httpd: ThreadingHTTPServer | None = None

    def issue(self, user: str | None, scopes: list[str]) -> str:
        assert self.cert is not None
        der = self.cert.public_bytes(serialization.Encoding.DER)
        # distribution 2.8 trusts a token whose x5c chain ends in a cert of `rootcertbundle`.
        header = {"alg": "ES256", "typ": "JWT", "x5c": [base64.b64encode(der).decode()]}
        now = int(time.time())
        claims = {
            "iss": TOKEN_ISSUER,
            "sub": user or "",
            "aud": TOKEN_SERVICE,
            "exp": now + self.expires_in,
            "nbf": now - 10,
            "iat": now,
            "jti": uuid.uuid4().hex,
            "access": [_grant(scope, anonymous=user is None) for scope in scopes],
        }
        signing_input = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
        r, s = decode_dss_signature(self.key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
        # JWS ES256 signatures are r || s, 32 bytes each, not DER.
        return f"{signing_input}.{_b64url(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


def _grant(scope: str, *, anonymous: bool) -> dict[str, Any]:
    kind, _, rest = scope.partition(":")
    name, _, actions = rest.rpartition(":")
    wanted = actions.split(",")
    return {"type": kind, "name": name, "actions": [a for a in wanted if a == "pull" or not anonymous]}


def _self_signed(key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, TOKEN_ISSUER)])
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )


def _token_handler(server: TokenServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            query = parse_qs(urlsplit(self.path).query)
            user = self._user()
            if user == "":
                self._reply(401, {"details": "bad credentials"})
                return
            scopes = query.get("scope", [])
            server.requests.append((user, scopes))
            token = server.issue(user, scopes)
            self._reply(200, {"token": token, "access_token": token, "expires_in": server.expires_in})

        def _user(self) -> str | None:
            """None for anonymous, "" for wrong credentials."""
            header = self.headers.get("Authorization")
            if header is None:
                return None
            try:
                user, _, password = base64.b64decode(header.removeprefix("Basic ")).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                return ""
            return user if (user, password) == (USERNAME, PASSWORD) else ""

        def _reply(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # keep pytest output clean

    return Handler


@pytest.fixture(scope="session")
def token_server() -> Iterator[TokenServer]:
    server = TokenServer()
    server.cert = _self_signed(server.key)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _token_handler(server))
    server.httpd = httpd
    server.url = f"http://127.0.0.1:{httpd.server_address[1]}/token"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield server
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="session")
def token_registry(tmp_path_factory: pytest.TempPathFactory, token_server: TokenServer) -> Iterator[RegistryServer]:
    """A registry that accepts only bearer tokens from `token_server`."""
    assert token_server.cert is not None
    workdir = tmp_path_factory.mktemp("token-registry")
    bundle = workdir / "token-root.pem"
    bundle.write_bytes(token_server.cert.public_bytes(serialization.Encoding.PEM))
    auth = {
        "token": {
            "realm": token_server.url,
            "service": TOKEN_SERVICE,
            "issuer": TOKEN_ISSUER,
            "rootcertbundle": str(bundle),
        }
    }
    server = start_registry(workdir, auth=auth)
    yield server
    server.stop()
