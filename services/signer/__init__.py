"""Signer service: key material and every signature the factory makes (STYLE.md §4 `services/signer`).

Cosign signatures for cached assets and installer indexes (factory spec §9.4), Authenticode for
Secure Boot PE files (imager spec §6.4) and the UKI `.pcrsig` PCR 11 policy signature (imager §6.3).
Private keys stay inside `keys.KeySet`; the rest of the mesh only sees public keys and certificates.
"""
