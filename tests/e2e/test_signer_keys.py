"""Signer keys through the running mesh: served public material, persistence, startup failures."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from services.mesh.supervisor import Mesh
from services.shared.config import config_to_env
from tests.e2e.conftest import http_get
from tests.support.mesh import mesh_overrides

pytestmark = pytest.mark.e2e


def test_public_key_and_certificate_are_served_and_survive_restarts(mesh: Mesh) -> None:
    status, headers, key_pem = http_get(f"{mesh.url}/oci/cosign/signing-key.pub")
    assert status == 200
    assert headers["Content-Type"] == "application/x-pem-file"
    key = serialization.load_pem_public_key(key_pem)
    assert isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp256r1"

    status, headers, cert_pem = http_get(f"{mesh.url}/secureboot/signing-cert.pem")
    assert (status, headers["Content-Type"]) == (200, "application/x-pem-file")
    cert = x509.load_pem_x509_certificate(cert_pem)
    assert isinstance(cert.public_key(), rsa.RSAPublicKey)

    keys_dir = mesh.config.state_dir / "keys"
    assert stat.S_IMODE(keys_dir.stat().st_mode) == 0o700
    for path in keys_dir.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path

    mesh.stop_process("signer")
    mesh.start_process("signer")
    mesh.wait_serving("signer", time.monotonic() + 30)
    assert http_get(f"{mesh.url}/oci/cosign/signing-key.pub")[2] == key_pem
    assert http_get(f"{mesh.url}/secureboot/signing-cert.pem")[2] == cert_pem


def test_mismatched_key_and_certificate_stop_the_signer_with_one_line(mesh: Mesh) -> None:
    keys = mesh.config.state_dir / "keys"
    env = dict(os.environ)
    env.update(config_to_env(mesh_overrides(mesh.config.state_dir)))
    env["IF_SIGNER_SECUREBOOT_KEY_PATH"] = str(keys / "pcr-signing-key.pem")  # a different RSA key
    env["IF_SIGNER_SECUREBOOT_CERT_PATH"] = str(keys / "uki-signing-cert.pem")
    result = subprocess.run(
        [sys.executable, "-m", "services.signer"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("signer: secure boot certificate ")
    assert "does not match the signing key" in last
    assert "Traceback" not in result.stderr


def test_unreadable_key_path_is_named(mesh: Mesh) -> None:
    env = dict(os.environ)
    env.update(config_to_env(mesh_overrides(mesh.config.state_dir)))
    env["IF_SIGNER_COSIGN_KEY_PATH"] = "/nonexistent/cosign.pem"
    result = subprocess.run(
        [sys.executable, "-m", "services.signer"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert "/nonexistent/cosign.pem" in result.stderr.strip().splitlines()[-1]
    assert "Traceback" not in result.stderr
