"""A small, real, bootable Talos-like upstream release, published to a local OCI registry.

The Image Factory reads Talos releases from `<registry>/siderolabs/*` (factory spec §7). This package
builds a stand-in for that upstream from Debian packages and pushes it, cosign-signed, so the factory
can be tested end to end without ghcr.io: imager images with a real kernel and a busybox initramfs
that boots in qemu and reports what the factory added, installer bases, extensions and their
catalog, an overlay and talosctl. Output is deterministic (SOURCE_DATE_EPOCH) and cached.

    python -m devtools.demo_release publish --registry 127.0.0.1:5000 --insecure --key cosign.pem
"""

from .model import DemoRelease, PublishedExtension, PublishedImage
from .publish import publish

__all__ = ["DemoRelease", "PublishedExtension", "PublishedImage", "publish"]
