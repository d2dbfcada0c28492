"""HTTP bytes exactly as a test writes them, on a fresh TCP connection to a mesh's gateway."""

from __future__ import annotations

import socket

from services.mesh.supervisor import Mesh


def raw_exchange(mesh: Mesh, data: bytes, timeout: float = 10.0) -> bytes:
    """Send `data` as given; return everything until the server closes the connection.

    The request should say `Connection: close`. No half-close: aiohttp takes it for a lost client.
    """
    host, _, port = mesh.config.http.listen.rpartition(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)
