"""The HTTP API (SPEC §4): thin FastAPI routes over the service functions."""

from reelwatch.api.app import create_api

__all__ = ["create_api"]
