"""Engines turn chat messages into streamed text: the interface, the backends, the catalog.

``import engines`` is cheap: the OpenAI SDK loads when an ``openai:`` engine is built (or
``engines.OpenAIEngine`` is first touched), torch and transformers when an ``hf:`` one starts.
This package never imports ``bot``, ``storage`` or ``sandbox``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engines.base import ChatMessage, Engine, GenerationRequest, Readiness, Usage
from engines.catalog import Catalog, ModelSpec
from engines.errors import (
    EngineBusy,
    EngineError,
    EngineNotInstalled,
    EngineNotReady,
    EngineRateLimited,
    EngineTimeout,
    EngineUnavailable,
    UnknownModel,
)
from engines.fake import FakeEngine
from engines.registry import (
    EngineFactory,
    create_engine,
    register_engine,
    schemes,
    unregister_engine,
)

if TYPE_CHECKING:
    from engines.local import ChatMLEngine, LocalEngine
    from engines.openai_compat import OpenAIEngine

__all__ = [
    "Catalog",
    "ChatMLEngine",
    "ChatMessage",
    "Engine",
    "EngineBusy",
    "EngineError",
    "EngineFactory",
    "EngineNotInstalled",
    "EngineNotReady",
    "EngineRateLimited",
    "EngineTimeout",
    "EngineUnavailable",
    "FakeEngine",
    "GenerationRequest",
    "LocalEngine",
    "ModelSpec",
    "OpenAIEngine",
    "Readiness",
    "UnknownModel",
    "Usage",
    "create_engine",
    "register_engine",
    "schemes",
    "unregister_engine",
]


def __getattr__(name: str) -> Any:
    if name == "OpenAIEngine":  # imports the OpenAI SDK, so only on first use
        from engines.openai_compat import OpenAIEngine

        return OpenAIEngine
    if name in ("LocalEngine", "ChatMLEngine"):  # cheap: torch loads when a model starts
        from engines import local

        return getattr(local, name)
    raise AttributeError(f"module 'engines' has no attribute {name!r}")
