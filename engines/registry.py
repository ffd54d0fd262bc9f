"""Which engine serves which scheme of model reference.

Each scheme (the part of a ref before ``:``) maps to a factory that builds an :class:`Engine`
from a :class:`ModelSpec`. The built-in factories import their backend only when called, so
``import engines`` stays cheap: ``openai`` (the OpenAI SDK), ``hf`` and ``hf-chatml`` (the local
engine; torch + transformers from the ``local`` extra, imported when the model loads, in a worker
thread) and ``fake`` (a deterministic echo for tests, benchmarks and offline demos).
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeAlias, cast

from engines.base import Engine
from engines.errors import EngineNotInstalled, UnknownModel
from engines.fake import FakeEngine

if TYPE_CHECKING:
    from engines.catalog import ModelSpec

__all__ = ["EngineFactory", "create_engine", "register_engine", "schemes", "unregister_engine"]

EngineFactory: TypeAlias = "Callable[[ModelSpec], Engine]"

_factories: dict[str, EngineFactory] = {}

# Modules whose absence means "the local extra is not installed" (accelerate is optional).
_LOCAL_DEPENDENCIES = ("torch", "transformers")


def register_engine(scheme: str, factory: EngineFactory) -> None:
    """Serve ``scheme:<target>`` references with ``factory``; replaces an earlier one."""
    if not scheme or ":" in scheme or scheme != scheme.strip():
        raise ValueError(f"invalid scheme {scheme!r}")
    _factories[scheme] = factory


def unregister_engine(scheme: str) -> None:
    """Forget ``scheme`` (for tests that register their own)."""
    _factories.pop(scheme, None)


def schemes() -> list[str]:
    """The registered schemes, in registration order."""
    return list(_factories)


def create_engine(spec: ModelSpec) -> Engine:
    """Build (but do not start) the engine for ``spec``.

    Raises :class:`UnknownModel` for an unregistered scheme and :class:`EngineNotInstalled`
    when the backend's optional dependencies are missing.
    """
    factory = _factories.get(spec.scheme)
    if factory is None:
        raise UnknownModel(spec.ref, choices=[f"{scheme}:<model>" for scheme in _factories])
    return factory(spec)


def _openai_factory(spec: ModelSpec) -> Engine:
    from engines.openai_compat import OpenAIEngine

    return OpenAIEngine(spec)


def _local_factory(class_name: str) -> EngineFactory:
    """A factory for ``engines.local.<class_name>``, or a helpful error without the extra."""

    def factory(spec: ModelSpec) -> Engine:
        if any(importlib.util.find_spec(name) is None for name in _LOCAL_DEPENDENCIES):
            raise EngineNotInstalled(
                "The local engine is not installed: pip install -e '.[local]' in the codethread "
                f"folder to run {spec.ref} (the README says how to pick the CPU-only torch); or "
                "use a server: set OPENAI_API_KEY, or OPENAI_BASE_URL for a local one."
            )
        module = importlib.import_module("engines.local")  # cheap: torch loads in start()
        engine_class = cast("Callable[[ModelSpec], Engine]", getattr(module, class_name))
        return engine_class(spec)

    return factory


def _fake_factory(spec: ModelSpec) -> Engine:
    return FakeEngine(model=spec.target, context_window=spec.context_window)


register_engine("openai", _openai_factory)
register_engine("hf", _local_factory("LocalEngine"))
register_engine("hf-chatml", _local_factory("ChatMLEngine"))
register_engine("fake", _fake_factory)
