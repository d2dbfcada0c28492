"""Free loopback ports for processes started by tests (one implementation, shared with devtools)."""

from __future__ import annotations

from devtools.local_registry import free_port

__all__ = ["free_port"]
