"""`make run`: the whole mesh on loopback, one process per service, until Ctrl-C."""

from __future__ import annotations

import asyncio
import sys

from services.mesh.supervisor import Mesh, MeshError, supervise
from services.shared.logs import setup_logging
from services.shared.process import parse_config


def main() -> int:
    config = parse_config(None, "Run the whole Image Factory mesh on this machine")
    setup_logging("mesh", config.log_level, config.log_format)
    mesh = Mesh(config=config)
    try:
        mesh.start()
    except MeshError as exc:
        print(f"image factory failed to start: {exc}", file=sys.stderr)
        return 1
    print(f"Image Factory is ready at {mesh.url}/ (state in {config.state_dir}); Ctrl-C stops it.", flush=True)
    return asyncio.run(supervise(mesh))


if __name__ == "__main__":
    sys.exit(main())
