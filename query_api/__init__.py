"""The HTTP query API: ``create_app(config, store=..., views=..., search=...)``."""

from .app import create_app

__all__ = ["create_app"]
