"""Any OpenAI-compatible chat-completions endpoint through the official ``openai`` SDK.

Serves ``openai:<model-id>`` references: OpenAI itself, or a local server (vLLM, Ollama,
llama.cpp, TGI, SGLang, ``transformers serve``) given its base URL. The SDK retries 429, 5xx and
connection errors with backoff (``max_retries``); whatever still fails becomes an
:class:`~engines.errors.EngineError` whose message is safe to show (never the key).

Endpoint, first found: the spec's ``base_url``, the ``base_url`` argument, ``OPENAI_BASE_URL``,
the SDK default (api.openai.com). Key: the variable named by the spec's ``api_key_env`` (only
that one, so a third-party entry never receives the OpenAI key), else the ``api_key`` argument,
else ``OPENAI_API_KEY``. Local servers need no key, so with a custom endpoint and no key a
placeholder is sent.

Request parameters come from the spec, because servers refuse what they do not take: the
token bound under the spec's ``token_limit_param``, a temperature only when the spec allows
one, its ``reasoning_effort``, and its ``extra_body`` merged into the JSON body. The request's
hints go out where they are known to work: ``prediction`` when the spec has
``predicted_outputs``; ``prompt_cache_key`` and ``safety_identifier`` to OpenAI's own API, or
to another server whose spec turns them on. Credentials in the URL never reach the log
(:mod:`engines.redact`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncGenerator
from typing import TYPE_CHECKING, cast
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import openai

from engines import redact
from engines.base import ChatMessage, Engine, GenerationRequest, Readiness, Usage
from engines.errors import (
    EngineError,
    EngineNotReady,
    EngineRateLimited,
    EngineTimeout,
    EngineUnavailable,
)

if TYPE_CHECKING:
    from openai.types.chat import ChatCompletionMessageParam
    from openai.types.shared import ReasoningEffort

    from engines.catalog import ModelSpec

__all__ = ["OpenAIEngine"]

log = logging.getLogger(__name__)

#: sent as the key to servers that need none (Ollama, vLLM, llama.cpp)
PLACEHOLDER_KEY = "not-needed"
_DEFAULT_HOST = "api.openai.com"
_CONNECT_TIMEOUT = 5.0
_PROBE_TIMEOUT = 3.0  # seconds a readiness probe waits for GET /models
_MAX_DETAIL = 200


class OpenAIEngine(Engine):
    """Streams chat completions from an OpenAI-compatible server."""

    scheme = "openai"
    key_env = "OPENAI_API_KEY"

    def __init__(
        self,
        spec: ModelSpec,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float = 60.0,
        max_retries: int = 2,
    ) -> None:
        super().__init__(model=spec.target, context_window=spec.context_window)
        #: the catalog entry: which request parameters this model takes
        self.spec = spec
        self.max_new_tokens = spec.max_new_tokens
        self.timeout = timeout
        self.max_retries = max_retries
        self.base_url = spec.base_url or base_url or os.environ.get("OPENAI_BASE_URL") or None
        #: the variable users should check when the key is missing or rejected
        self.key_env_name = spec.api_key_env or self.key_env
        if spec.api_key_env:
            key = os.environ.get(spec.api_key_env)
        else:
            key = api_key or os.environ.get(self.key_env)
        self._problem: str | None = None
        if not key and spec.api_key_env:
            self._problem = f"{spec.api_key_env} is not set"
        elif not key and self.base_url is None:
            self._problem = f"{self.key_env} is not set (or set OPENAI_BASE_URL for a local server)"
        if self.base_url is not None and not _is_http_url(self.base_url):
            self._problem = f"the server URL for {spec.name} must start with http:// or https://"
        self._api_key = key or PLACEHOLDER_KEY
        self.host = _host_of(self.base_url)
        #: OpenAI's own API: the request hints it documents are sent without asking
        self.openai_hosted = self.host == _DEFAULT_HOST
        self._client: openai.AsyncOpenAI | None = None

    async def start(self) -> None:
        """Check the configuration and build the client; no request is sent."""
        if self._problem is not None:
            self._readiness = Readiness(state="failed", detail=self._problem)
            return
        self._ensure_client()
        self._readiness = Readiness(state="ready")

    async def probe(self) -> Readiness:
        """``GET /models`` with a short timeout: ready, unreachable or unauthorized.

        A server without that endpoint (404) counts as ready: it answered. A probe never
        turns requests away: a server that was down may be up for the next one.
        """
        if self._problem is not None:
            self._readiness = Readiness(state="failed", detail=self._problem)
            return self._readiness
        try:
            await self._models(seconds=_PROBE_TIMEOUT)
        except openai.NotFoundError:
            self._readiness = Readiness(state="ready")
        except (openai.AuthenticationError, openai.PermissionDeniedError):
            detail = f"unauthorized: {self.host} rejected the key (check {self.key_env_name})"
            self._readiness = Readiness(state="failed", detail=detail)
        except openai.APIConnectionError:  # timeouts included
            detail = f"unreachable: no answer from {self.host} within {_PROBE_TIMEOUT:g} s"
            self._readiness = Readiness(state="failed", detail=detail)
        except openai.OpenAIError as exc:
            detail = f"the server at {self.host} answered with an error ({type(exc).__name__})"
            self._readiness = Readiness(state="failed", detail=detail)
        else:
            self._readiness = Readiness(state="ready")
        return self._readiness

    async def server_models(self) -> list[str]:
        """The ids the server lists under ``GET /models``."""
        if self._problem is not None:
            raise EngineNotReady(self._problem)
        try:
            return await self._models(seconds=_PROBE_TIMEOUT)
        except openai.OpenAIError as exc:
            raise self._translate(exc, mid_stream=False) from None

    async def _models(self, *, seconds: float) -> list[str]:
        client = self._ensure_client().with_options(timeout=seconds, max_retries=0)
        return sorted([model.id async for model in client.models.list()])

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.close()

    def _ensure_client(self) -> openai.AsyncOpenAI:
        if self._client is None:
            redact.protect_loggers()  # the SDK and its HTTP stack are imported by now
            # The SDK appends paths to the base URL's path and would drop (or misplace) a
            # query such as ``?api-key=…``: send it as a query on every request instead.
            parts = urlsplit(self.base_url or f"https://{_DEFAULT_HOST}/v1")
            self._client = openai.AsyncOpenAI(
                api_key=self._api_key,
                base_url=urlunsplit(parts._replace(query="", fragment="")),
                default_query=dict(parse_qsl(parts.query, keep_blank_values=True)) or None,
                timeout=openai.Timeout(self.timeout, connect=min(self.timeout, _CONNECT_TIMEOUT)),
                max_retries=self.max_retries,
            )
        return self._client

    async def _stream(self, request: GenerationRequest, usage: Usage) -> AsyncGenerator[str]:
        if self._problem is not None:
            raise EngineNotReady(self._problem)
        client = self._ensure_client()
        spec = self.spec
        limit = min(request.max_tokens, self.max_new_tokens)
        answering = False
        try:
            stream = await client.chat.completions.create(
                model=self.model,
                messages=[_message_param(m) for m in request.messages],
                temperature=request.temperature if spec.temperature else openai.omit,
                max_tokens=limit if spec.token_limit_param == "max_tokens" else openai.omit,
                max_completion_tokens=(
                    limit if spec.token_limit_param == "max_completion_tokens" else openai.omit
                ),
                reasoning_effort=(
                    cast("ReasoningEffort", spec.reasoning_effort)
                    if spec.reasoning_effort is not None
                    else openai.omit
                ),
                prediction=(
                    {"type": "content", "content": request.prediction}
                    if spec.predicted_outputs and request.prediction
                    else openai.omit
                ),
                prompt_cache_key=(
                    request.cache_key
                    if request.cache_key and self._sends(spec.prompt_cache_key)
                    else openai.omit
                ),
                safety_identifier=(
                    request.user
                    if request.user and self._sends(spec.safety_identifier)
                    else openai.omit
                ),
                stream=True,
                stream_options={"include_usage": True},
                extra_body=dict(spec.extra_body) or None,
            )
            answering = True
            async with stream:
                async for chunk in stream:
                    if chunk.usage is not None:
                        usage.prompt_tokens = chunk.usage.prompt_tokens
                        usage.completion_tokens = chunk.usage.completion_tokens
                    for choice in chunk.choices:
                        if choice.index == 0 and choice.delta and choice.delta.content:
                            yield choice.delta.content
        except openai.OpenAIError as exc:
            error = self._translate(exc, mid_stream=answering)
            # Status errors may echo the request (and a key) back; keep them out of tracebacks.
            raise error from (None if isinstance(exc, openai.APIStatusError) else exc)
        except Exception as exc:  # a malformed answer, or a transport error the SDK let through
            log.warning("unexpected failure talking to %s", self.host, exc_info=True)
            raise EngineUnavailable(
                f"The model server at {self.host} sent an answer that could not be read."
            ) from exc

    def _sends(self, setting: bool | None) -> bool:
        """Whether a hint with this spec setting goes out: None means OpenAI's API only."""
        return self.openai_hosted if setting is None else setting

    def _translate(self, exc: openai.OpenAIError, *, mid_stream: bool) -> EngineError:
        """The user-facing error for an SDK failure (most specific classes first)."""
        where = f"The model server at {self.host}"
        if isinstance(exc, openai.APITimeoutError):
            return EngineTimeout(
                f"{where} did not answer within {self.timeout:g} s. "
                "Try again, or pick another model."
            )
        if isinstance(exc, openai.APIConnectionError):
            if mid_stream:
                return EngineUnavailable(f"{where} broke off the answer midway. Try again.")
            return EngineUnavailable(
                f"Could not connect to the model server at {self.host}. Is it running? "
                "(OPENAI_BASE_URL chooses the server.)"
            )
        if isinstance(exc, openai.APIStatusError):
            status = exc.status_code
            detail = self._detail(exc)
            log.info("%s answered HTTP %s: %s", self.host, status, detail or "-")
            if isinstance(exc, openai.RateLimitError):
                return EngineRateLimited(
                    _sentence(f"{where} is rate-limiting requests (HTTP 429){_suffix(detail)}")
                    + " Wait a moment and try again."
                )
            if isinstance(exc, openai.AuthenticationError | openai.PermissionDeniedError):
                return EngineUnavailable(
                    f"{where} rejected the API key (HTTP {status}). Check {self.key_env_name}."
                )
            if isinstance(exc, openai.NotFoundError):
                return EngineUnavailable(
                    f"{where} does not serve the model {self.model!r} (HTTP 404). "
                    "Check the model name."
                )
            return EngineUnavailable(_sentence(f"{where} answered HTTP {status}{_suffix(detail)}"))
        if isinstance(exc, openai.APIError):
            return EngineUnavailable(
                _sentence(f"{where} reported an error{_suffix(self._detail(exc))}")
            )
        log.warning("request to %s failed: %s", self.host, type(exc).__name__)
        return EngineUnavailable(f"The request to the model server at {self.host} failed.")

    def _detail(self, exc: openai.APIError) -> str:
        """The server's own short error message, with the key masked, or ""."""
        body = exc.body
        message = body.get("message") if isinstance(body, dict) else body
        if not isinstance(message, str):
            return ""
        if self._api_key != PLACEHOLDER_KEY:
            message = message.replace(self._api_key, "***")
        message = " ".join(message.split())
        return message if len(message) <= _MAX_DETAIL else message[: _MAX_DETAIL - 1] + "…"


def _sentence(text: str) -> str:
    return text if text.endswith((".", "!", "?", "…")) else text + "."


def _suffix(detail: str) -> str:
    return f": {detail}" if detail else ""


def _is_http_url(url: str) -> bool:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _host_of(base_url: str | None) -> str:
    """``host[:port]`` of a URL, without any user:password part."""
    if not base_url or not _is_http_url(base_url):
        return _DEFAULT_HOST if not base_url else "the configured server"
    parts = urlsplit(base_url)
    return f"{parts.hostname}:{parts.port}" if parts.port else str(parts.hostname)


def _message_param(message: ChatMessage) -> ChatCompletionMessageParam:
    if message.role == "system":
        return {"role": "system", "content": message.content}
    if message.role == "assistant":
        return {"role": "assistant", "content": message.content}
    return {"role": "user", "content": message.content}
