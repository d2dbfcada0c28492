"""Signer domain errors."""

from __future__ import annotations

from services.shared.errors import Internal


class SignerConfigError(Internal):
    """Key material is missing, unreadable or inconsistent; raised at startup, names the path."""

    reason = "SIGNER_CONFIG"
