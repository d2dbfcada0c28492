"""Public key material: the cosign verification key and the Secure Boot certificate (spec §2.9, §2.10)."""

from __future__ import annotations

from aiohttp import web

from gateway.keys import BACKENDS
from imagefactory.v1 import builder_pb2

PEM_CONTENT_TYPE = "application/x-pem-file"


# The gateway never talks to the signer (only the builder and the cache may); the builder relays these.
async def cosign_public_key(request: web.Request) -> web.Response:
    reply = await request.app[BACKENDS].builder.GetPublicKeys(builder_pb2.GetPublicKeysRequest())
    return web.Response(body=reply.cosign_public_key_pem.encode(), content_type=PEM_CONTENT_TYPE)


async def secureboot_certificate(request: web.Request) -> web.Response:
    reply = await request.app[BACKENDS].builder.GetPublicKeys(builder_pb2.GetPublicKeysRequest())
    return web.Response(body=reply.secureboot_certificate_pem.encode(), content_type=PEM_CONTENT_TYPE)


def register(app: web.Application) -> None:
    app.router.add_get("/oci/cosign/signing-key.pub", cosign_public_key, allow_head=False)
    app.router.add_get("/secureboot/signing-cert.pem", secureboot_certificate, allow_head=False)
