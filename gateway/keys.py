"""Typed application keys (aiohttp AppKey) shared by the frontends."""

from __future__ import annotations

from aiohttp import web

from gateway.backends import Backends
from services.shared.config import Config

CONFIG = web.AppKey("config", Config)
BACKENDS = web.AppKey("backends", Backends)
