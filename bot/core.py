"""The session service: everything a chat adapter can ask of codethread.

A session is one snippet's story, kept in one thread. :meth:`SessionService.start` opens it;
:meth:`SessionService.turn` produces the next version from a request (the first prompt, or
feedback on the current version) and reports progress as :mod:`bot.values` events. Turns of one
session run strictly in arrival order (one lock per session); different sessions run
concurrently. Anyone in a thread may give feedback; only the owner may delete a session.

The service knows no platform: adapters pass a :class:`~bot.values.Caller` and render events.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections import OrderedDict
from collections.abc import AsyncGenerator
from dataclasses import dataclass

from bot.codeblocks import extract_code
from bot.engine_pool import EnginePool, ModelStatus
from bot.errors import NotOwner, SessionNotFound, UnknownModelRef, UserError
from bot.languages import Language, Languages
from bot.limits import AccessPolicy, RateLimiter, check_prompt
from bot.metrics import Metrics
from bot.prompts import ContextTooSmall, PromptBudget, build_messages
from bot.session_queue import SessionQueue
from bot.values import (
    Caller,
    Done,
    Failed,
    Loading,
    NonCode,
    Progress,
    Reply,
    Started,
    Waiting,
)
from engines import ChatMessage, EngineError, GenerationRequest, ModelSpec, Usage
from storage import Session, SessionKey, Store, Version
from storage import SessionNotFound as StoreSessionNotFound

__all__ = ["ServiceSettings", "SessionService", "StartCheck"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ServiceSettings:
    default_language: str = "python"
    max_prompt_chars: int = 8000
    temperature: float = 0.2
    turn_timeout: float = 300.0  # seconds for one whole answer
    max_answer_chars: int = 200_000  # stop reading a runaway answer here
    #: chat users may name any openai:/hf: reference (else only catalog names); the terminal
    #: user, who runs the bot themselves, always may
    allow_any_model: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class StartCheck:
    """A request that passed every check: the stripped prompt, the language and the model."""

    prompt: str
    language: Language
    model: ModelSpec


class SessionService:
    def __init__(
        self,
        *,
        store: Store,
        engines: EnginePool,
        languages: Languages,
        settings: ServiceSettings,
        metrics: Metrics,
        rate_limiter: RateLimiter | None = None,
        access: AccessPolicy | None = None,
    ) -> None:
        self.store = store
        self.engines = engines
        self.languages = languages
        self.settings = settings
        self.metrics = metrics
        self._rate = rate_limiter or RateLimiter(limit=0)
        self._access = access or AccessPolicy()
        self._queue = SessionQueue()
        self._failed: dict[int, str] = {}  # session id -> request of its last failed turn
        self._seen: OrderedDict[str, None] = OrderedDict()  # recent delivery ids

    # -- sessions ----------------------------------------------------------------------------

    def check(
        self, caller: Caller, *, prompt: str, language: str | None = None, model: str | None = None
    ) -> StartCheck:
        """Everything :meth:`start` would refuse, checked without storing anything.

        Adapters call it before they post anything on the platform (a parent message, a
        thread), so that a refusal leaves nothing behind.
        """
        self._access.check(user=caller.user, channel=caller.channel)
        prompt = check_prompt(prompt, limit=self.settings.max_prompt_chars)
        lang = self.language(language)
        spec = self.engines.resolve(model)
        self._check_model_offered(caller, spec)
        self._rate.check(self._rate_key(caller), count=False)
        return StartCheck(prompt=prompt, language=lang, model=spec)

    async def start(
        self,
        *,
        caller: Caller,
        key: SessionKey,
        prompt: str,
        language: str | None = None,
        model: str | None = None,
    ) -> Session:
        """Open a session for ``prompt``; refuses bad input before anything is stored."""
        checked = self.check(caller, prompt=prompt, language=language, model=model)
        return await self.store.create_session(
            key=key,
            owner=caller.user,
            language=checked.language.name,
            model=checked.model.name,
            title=checked.prompt.splitlines()[0][:80],
        )

    def language(self, word: str | None) -> Language:
        return self.languages.get(word or self.settings.default_language)

    async def find(self, key: SessionKey) -> Session | None:
        """The session living in a thread, if any (adapters ignore threads that are not)."""
        return await self.store.find_session(key)

    async def get(self, session_id: int, caller: Caller | None = None) -> Session:
        """The session ``session_id``; with a caller, only if they own it."""
        session = await self.store.get_session(session_id)
        if session is None:
            raise SessionNotFound(session_id)
        if caller is not None and not self._owns(caller, session):
            raise NotOwner(session_id)
        return session

    async def list_sessions(self, caller: Caller, *, limit: int = 25) -> list[Session]:
        """The caller's sessions in their workspace, newest first."""
        return await self.store.list_sessions(
            owner=caller.user, platform=caller.platform, workspace=caller.workspace, limit=limit
        )

    async def show(
        self, session_id: int, *, number: int | None = None, caller: Caller | None = None
    ) -> tuple[Session, Version | None]:
        """A session and one of its versions (the latest by default)."""
        session = await self.get(session_id, caller)
        version = await self.store.get_version(session_id, number)
        if number is not None and version is None:
            raise UserError(f"Session {session_id} has no version {number}.")
        return session, version

    async def delete(self, session_id: int, caller: Caller) -> Session:
        """Delete a session and everything in it; owner only. Cancels nothing already running."""
        session = await self.get(session_id, caller)
        await self.store.delete_session(session_id)
        self._failed.pop(session_id, None)
        return session

    def models(self) -> list[ModelStatus]:
        return self.engines.status()

    def first_delivery(self, delivery_id: str) -> bool:
        """True the first time a platform delivery id is seen (retries return False)."""
        if delivery_id in self._seen:
            return False
        self._seen[delivery_id] = None
        if len(self._seen) > 10_000:
            self._seen.popitem(last=False)
        return True

    def failed_request(self, session_id: int) -> str | None:
        """The request of the session's last failed turn, kept so that it can be retried."""
        return self._failed.get(session_id)

    @staticmethod
    def _owns(caller: Caller, session: Session) -> bool:
        return (
            caller.user == session.owner
            and caller.platform == session.key.platform
            and caller.workspace == session.key.workspace
        )

    def check_rate(self, caller: Caller) -> None:
        """Count one request of ``caller`` against the rate limit (runs, tests)."""
        self._rate.check(self._rate_key(caller))

    def _check_model_offered(self, caller: Caller, spec: ModelSpec) -> None:
        """Chat users pick from the catalog: an ad-hoc reference could make the bot download
        arbitrary weights or spend the operator's key on any model."""
        catalog = self.engines.catalog
        if (
            caller.platform == "console"
            or self.settings.allow_any_model
            or spec.name in catalog
            or spec.ref == self.engines.resolve(None).ref
        ):
            return
        raise UnknownModelRef(
            f"Model {spec.name!r} is not offered here. Choose one of: {', '.join(catalog.names())}."
        )

    @staticmethod
    def visible(caller: Caller, session: Session) -> bool:
        """A session is reachable only from its own platform and workspace."""
        return (caller.platform, caller.workspace) == (
            session.key.platform,
            session.key.workspace,
        )

    @staticmethod
    def _rate_key(caller: Caller) -> str:
        return f"{caller.platform}:{caller.workspace}:{caller.user}"

    # -- turns -------------------------------------------------------------------------------

    async def turn(
        self, session_id: int, caller: Caller, text: str, *, base: int | None = None
    ) -> AsyncGenerator[Reply]:
        """Make the next version of a session from ``text``; yields events, ends with a result.

        Refusals (empty or oversized text, rate limit, allow-lists, unknown session) raise
        :class:`UserError` before any event. Engine failures end the stream with
        :class:`Failed`, keeping the request for a retry; the session stays usable. With
        ``base``, the turn only goes ahead if version ``base`` is still the current one (a fix
        made from that version's failure must not land on a newer version).
        """
        self._access.check(user=caller.user, channel=caller.channel)
        request = check_prompt(text, limit=self.settings.max_prompt_chars)
        self._rate.check(self._rate_key(caller))
        ticket = self._queue.join(session_id)  # before any yield: arrival order is work order
        try:
            if ticket.ahead:
                yield Waiting(position=ticket.ahead)
            await ticket.wait()
            session = await self.store.get_session(session_id)
            if session is None or not self.visible(caller, session):
                raise SessionNotFound(session_id)  # unknown, or deleted while this turn waited
            async with contextlib.aclosing(self._turn(session, request, base)) as events:
                async for event in events:
                    yield event
        finally:
            self._queue.leave(ticket)

    async def _turn(
        self, session: Session, request: str, base: int | None
    ) -> AsyncGenerator[Reply]:
        language = self.language(session.language)
        history = await self.store.list_versions(session.id)
        if base is not None and len(history) != base:
            yield Failed(
                session=session,
                message=f"The snippet has changed since version {base}; "
                f"run or test version {len(history)} and fix that instead.",
                request=request,
            )
            return
        if not history and (earlier := self._failed.get(session.id)) and earlier != request:
            request = f"{earlier}\n\n{request}"  # the first answer failed: keep what was asked
        try:
            spec = self.engines.resolve(session.model)
            engine = self.engines.get(spec)
        except (UserError, EngineError) as err:
            yield self._fail(session, request, str(err))
            return
        if self.engines.is_loading(spec):
            yield Loading(model=spec.name, position=self.engines.waiting(spec) + 1)
        await self.engines.wait_ready(spec)
        if engine.pending:
            yield Loading(model=spec.name, position=engine.pending + 1, busy=True)
        yield Started(session=session, request=request, number=len(history) + 1, model=spec.name)

        budget = PromptBudget(
            context_window=engine.context_window,
            reserve_for_answer=min(spec.max_new_tokens, engine.context_window // 2),
        )
        try:
            messages = build_messages(
                language=language, history=history, request=request, budget=budget
            )
        except ContextTooSmall as err:
            yield self._fail(session, request, str(err))
            return
        generation = GenerationRequest(
            messages=messages,
            temperature=self.settings.temperature,
            max_tokens=budget.reserve_for_answer,
        )
        usage = Usage()
        began = time.perf_counter()
        parts: list[str] = []
        size = 0
        deadline = asyncio.get_running_loop().time() + self.settings.turn_timeout
        try:
            async with contextlib.aclosing(engine.stream(generation, usage)) as deltas:
                while size < self.settings.max_answer_chars:
                    async with asyncio.timeout_at(deadline):  # only the engine is timed, not
                        delta = await anext(deltas, None)  # the consumer of the events
                    if delta is None:
                        break
                    parts.append(delta)
                    size += len(delta)
                    yield Progress(delta=delta, text="".join(parts))
        except EngineError as err:
            yield self._fail(session, request, str(err))
            return
        except TimeoutError:
            yield self._fail(
                session, request, f"The model took longer than {self.settings.turn_timeout:.0f} s."
            )
            return
        latency_ms = round((time.perf_counter() - began) * 1000)
        self.metrics.observe_answer(model=spec.name, seconds=latency_ms / 1000)
        answer = "".join(parts)
        extraction = extract_code(answer)
        self._failed.pop(session.id, None)
        if extraction is None:
            self.metrics.turns.labels(outcome="non_code").inc()
            yield NonCode(session=session, text=answer.strip() or "(the model returned nothing)")
            return
        try:
            version = await self.store.add_version(
                session.id,
                request=request,
                code=extraction.code,
                note=extraction.note,
                model=spec.name,
                prompt_tokens=usage.prompt_tokens,
                completion_tokens=usage.completion_tokens,
                latency_ms=latency_ms,
            )
        except StoreSessionNotFound:
            yield Failed(
                session=session,
                message="This session was deleted while the new version was being written.",
                request=request,
            )
            return
        self.metrics.turns.labels(outcome="version").inc()
        session = dataclasses.replace(
            session, version_count=version.number, updated_at=version.created_at
        )
        yield Done(session=session, version=version, complete=extraction.complete)

    async def complete(self, session: Session, messages: tuple[ChatMessage, ...]) -> str:
        """One whole answer of the session's model to ``messages``, outside any version.

        Used for side requests such as unit tests. Raises EngineError, or UserError when the
        model is unknown or does not answer within the turn timeout.
        """
        spec = self.engines.resolve(session.model)
        engine = self.engines.get(spec)
        await self.engines.wait_ready(spec)
        request = GenerationRequest(
            messages=messages,
            temperature=self.settings.temperature,
            max_tokens=min(spec.max_new_tokens, engine.context_window // 2),
        )
        parts: list[str] = []
        try:
            async with (
                asyncio.timeout(self.settings.turn_timeout),
                contextlib.aclosing(engine.stream(request)) as deltas,
            ):
                async for delta in deltas:
                    parts.append(delta)
        except TimeoutError:
            raise UserError(
                f"The model took longer than {self.settings.turn_timeout:.0f} s."
            ) from None
        return "".join(parts)

    def _fail(self, session: Session, request: str, message: str) -> Failed:
        self._failed[session.id] = request
        self.metrics.turns.labels(outcome="failed").inc()
        return Failed(session=session, message=message, request=request)
