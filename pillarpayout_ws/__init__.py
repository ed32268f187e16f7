"""PillarPayout: a real-time multiplayer crash game server."""

from __future__ import annotations

__version__ = "0.1.0"
