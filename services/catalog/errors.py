"""Catalog domain errors (STYLE §6: errors start where the problem is found)."""

from __future__ import annotations

from services.shared.errors import Internal


class CatalogFormatError(Internal):
    """An upstream catalog image (`extensions`, `overlays`, `talosctl-all`) has unusable content.

    The Go service answers these with a plain 500 (spec §7.3 to §7.5); the texts are kept.
    """

    reason = "CATALOG_FORMAT"
