"""Python SDK of the Image Factory: async and sync HTTP clients, resumable downloads, air-gap bundles.

    from imagefactory_client import Client
    with Client("http://127.0.0.1:8080") as factory:
        sid = factory.create_schematic({"customization": {"extraKernelArgs": ["console=ttyS0"]}})
        factory.download(sid, "v1.12.1", "metal-amd64.iso", Path("metal-amd64.iso"))

gRPC stubs for integrators inside the mesh: `imagefactory_client.grpc.connect(service, address)`.
"""

from imagefactory_client.client import DEFAULT_URL, URL_ENV, AsyncClient, version_tag
from imagefactory_client.errors import (
    APIError,
    BadRequest,
    ClientError,
    DownloadInterrupted,
    EnterpriseRequired,
    ImageFactoryError,
    IntegrityError,
    MethodNotAllowed,
    NotFound,
    NotImplementedByServer,
    PayloadTooLarge,
    RangeNotSatisfiable,
    ServerError,
    TooManyRequests,
    TransportError,
    Unavailable,
)
from imagefactory_client.models import AssetInfo, Downloaded, ExtensionInfo, OverlayInfo
from imagefactory_client.sync import Client
from imagefactory_client.transfer import Options

__all__ = [
    "DEFAULT_URL",
    "URL_ENV",
    "APIError",
    "AssetInfo",
    "AsyncClient",
    "BadRequest",
    "Client",
    "ClientError",
    "DownloadInterrupted",
    "Downloaded",
    "EnterpriseRequired",
    "ExtensionInfo",
    "ImageFactoryError",
    "IntegrityError",
    "MethodNotAllowed",
    "NotFound",
    "NotImplementedByServer",
    "Options",
    "OverlayInfo",
    "PayloadTooLarge",
    "RangeNotSatisfiable",
    "ServerError",
    "TooManyRequests",
    "TransportError",
    "Unavailable",
    "version_tag",
]
