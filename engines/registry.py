"""Which engine serves which scheme of model reference.

Each scheme (the part of a ref before ``:``) maps to a factory that builds an :class:`Engine`
from a :class:`ModelSpec`. The built-in factories import their backend only when called, so
``import engines`` stays cheap: ``openai`` (the OpenAI SDK), ``hf`` (torch + transformers, the
``local`` extra) and ``fake`` (a deterministic echo for tests, benchmarks and offline demos).
"""

from __future__ import annotations

import importlib
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

# Modules whose absence means "the local extra is not installed", not a bug in engines.local.
_LOCAL_DEPENDENCIES = frozenset({"engines.local", "torch", "transformers", "accelerate"})


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


def _hf_factory(spec: ModelSpec) -> Engine:
    """``engines.local.LocalEngine(spec)``, or a helpful error without the ``local`` extra."""
    try:
        module = importlib.import_module("engines.local")
    except ImportError as exc:
        if exc.name not in _LOCAL_DEPENDENCIES:
            raise
        raise EngineNotInstalled(
            "The local engine is not installed: pip install 'codethread[local]' "
            "(install the torch build for your hardware first, see the README) "
            f"to run {spec.ref}; or pick an openai: model."
        ) from exc
    local_engine = cast("Callable[[ModelSpec], Engine]", module.LocalEngine)
    return local_engine(spec)


def _fake_factory(spec: ModelSpec) -> Engine:
    return FakeEngine(model=spec.target, context_window=spec.context_window)


register_engine("openai", _openai_factory)
register_engine("hf", _hf_factory)
register_engine("fake", _fake_factory)
