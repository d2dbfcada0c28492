"""The product name and version, as sent in the `Server` header and trace resources."""

from __future__ import annotations

from importlib import metadata

PRODUCT_NAME = "Image Factory"

try:
    VERSION = metadata.version("image-factory-py")
except metadata.PackageNotFoundError:  # running from a source tree without `pip install -e .`
    VERSION = "0.0.0-dev"
