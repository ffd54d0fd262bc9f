"""The session service: everything a surface can ask of codethread about sessions and turns.

A session is one snippet's story, kept in one thread. :meth:`SessionService.open` starts it in a
thread and makes version 1; :meth:`SessionService.reply` (a message in a thread),
:meth:`SessionService.turn` (a known session) and :meth:`SessionService.retry` (a failed
request, again) produce the next version and report progress as :mod:`bot.values` events.

Order: ``open``, ``reply`` and ``turn`` are plain functions that take the turn's place in its
thread's line *before they return* (no await in between), so the order in which an adapter
hands turns over is the order of work, whatever the adapter awaits afterwards. Turns of one
thread run strictly one after another; different threads run concurrently.

Failures: a turn that fails keeps its request in the store (one per session, the latest), so
Retry works after a restart, and once per failure: the Retry of a failure that was already
retried, or superseded by a newer one, is refused. Anyone in a thread may give feedback; only
the owner may delete a session.

The service knows no platform: adapters pass a :class:`~bot.values.Caller`; a ``trusted``
caller (the terminal user, who runs the bot themselves) may name any model reference.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import re
import time
from collections import OrderedDict
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bot import files, logs
from bot.codeblocks import Extraction, extract_code
from bot.diffs import unified_diff
from bot.engine_pool import EnginePool, ModelStatus
from bot.errors import (
    ContextTooSmall,
    NotASession,
    NothingToDo,
    NotOwner,
    SessionNotFound,
    StaleVersion,
    TurnTimeout,
    UnknownModelRef,
    UserError,
)
from bot.files import as_text
from bot.languages import Language, Languages
from bot.limits import AccessPolicy, RateLimiter, check_prompt
from bot.metrics import Metrics
from bot.prompts import PromptBudget, build_messages, language_reminder
from bot.session_queue import SessionQueue, Ticket
from bot.values import (
    Action,
    Attached,
    Caller,
    Comparison,
    Done,
    Failed,
    Loading,
    NonCode,
    Progress,
    Refusal,
    Reply,
    Started,
    Upload,
    Waiting,
)
from engines import ChatMessage, EngineError, GenerationRequest, ModelSpec, Usage
from storage import Session, SessionFile, SessionGone, SessionKey, Store, Version

__all__ = ["ServiceSettings", "SessionService", "StartCheck", "TurnStream"]

#: "in python", "using C++", "written in Go": a language named in a first request
_NAMED = re.compile(r"\b(?:in|using)\s+(?P<word>[A-Za-z][\w+#]*)")


@dataclass(frozen=True, slots=True, kw_only=True)
class ServiceSettings:
    default_language: str = "python"
    max_prompt_chars: int = 8000
    temperature: float = 0.2
    turn_timeout: float = 300.0  # seconds for one whole answer
    max_answer_chars: int = 200_000  # stop reading a runaway answer here
    #: chat users may name any openai:/hf: reference (else only catalog names)
    allow_any_model: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class StartCheck:
    """A request that passed every check: the stripped prompt, the language and the model."""

    prompt: str
    language: Language
    model: ModelSpec


class TurnStream(AsyncGenerator[Reply, None]):
    """A turn's events; holds the turn's place in its thread's line until closed.

    Closing it (``aclose``, also when it was never iterated) leaves the line, so a turn that
    an adapter dropped cannot hold up the thread.
    """

    def __init__(self, queue: SessionQueue, ticket: Ticket, body: AsyncGenerator[Reply]) -> None:
        self._queue = queue
        self._ticket: Ticket | None = ticket
        self._body = body

    def _leave(self) -> None:
        if self._ticket is not None:
            self._queue.leave(self._ticket)
            self._ticket = None

    async def asend(self, value: None) -> Reply:
        try:
            return await self._body.asend(value)
        except BaseException:
            self._leave()  # ended (StopAsyncIteration), failed or cancelled
            raise

    async def athrow(self, *args: Any) -> Reply:
        try:
            return await self._body.athrow(*args)
        except BaseException:
            self._leave()
            raise

    async def aclose(self) -> None:
        try:
            await self._body.aclose()
        finally:
            self._leave()


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
        packages: Callable[[str], Mapping[str, str]] | None = None,
    ) -> None:
        """``packages``: what a language's snippets can import where they run (the sandbox's
        prepared environment), named in the system prompt; None where nothing runs."""
        self.store = store
        self.engines = engines
        self.languages = languages
        self.settings = settings
        self.metrics = metrics
        self._rate = rate_limiter or RateLimiter(limit=0)
        self._access = access or AccessPolicy()
        self._queue = SessionQueue()
        self._packages = packages
        self._seen: OrderedDict[str, None] = OrderedDict()  # recent delivery ids

    # -- what a surface may ask before it acts -----------------------------------------------

    def check(
        self, caller: Caller, *, prompt: str, language: str | None = None, model: str | None = None
    ) -> StartCheck:
        """Everything :meth:`open` would refuse, checked without storing anything.

        Adapters call it before they post anything on the platform (a parent message, a
        thread), so that a refusal leaves nothing behind.
        """
        self._access.check(user=caller.user, channel=caller.channel)
        prompt = check_prompt(prompt, limit=self.settings.max_prompt_chars)
        lang = self.language(language) if language else self._named_language(prompt)
        spec = self.model(model)
        self._check_model_offered(caller, spec)
        self._rate.check(self._rate_key(caller), count=False)
        return StartCheck(prompt=prompt, language=lang, model=spec)

    def _named_language(self, prompt: str) -> Language:
        """The language a first request names ("… in JavaScript", "using rust"), else the
        default. One-letter names count only capitalised ("in C", "in R")."""
        for match in _NAMED.finditer(prompt):
            word = match["word"].rstrip(".,;:!?")
            if (len(word) > 1 or word.isupper()) and word in self.languages:
                return self.languages.get(word)
        return self.language(None)

    def language(self, word: str | None) -> Language:
        """The language named ``word`` (the default when None); refuses unknown ones."""
        return self.languages.get(word or self.settings.default_language)

    def model(self, ref: str | None) -> ModelSpec:
        """The catalog entry for a model reference (the default when None)."""
        return self.engines.resolve(ref)

    def models(self) -> list[ModelStatus]:
        return self.engines.status()

    def warm(self, spec: ModelSpec) -> None:
        """Start loading ``spec``'s engine now (while a person types); a failure shows later,
        in the first turn and in the model's readiness."""
        with contextlib.suppress(EngineError):
            self.engines.get(spec)

    @property
    def max_prompt_chars(self) -> int:
        return self.settings.max_prompt_chars

    async def claim_delivery(self, delivery_id: str) -> bool:
        """True the first time any replica sees a platform delivery id (a row that expires
        after a day: Slack's retries, a restart between receipt and ack, a second replica)."""
        return await self.store.claim_delivery(delivery_id)

    def first_delivery(self, delivery_id: str) -> bool:
        """True the first time this process sees a platform delivery id (retries return
        False); for the pairs of events one message makes, where no row is needed."""
        if delivery_id in self._seen:
            return False
        self._seen[delivery_id] = None
        if len(self._seen) > 10_000:
            self._seen.popitem(last=False)
        return True

    # -- sessions ----------------------------------------------------------------------------

    async def start(
        self,
        *,
        caller: Caller,
        key: SessionKey,
        prompt: str,
        language: str | None = None,
        model: str | None = None,
    ) -> Session:
        """Open a session for ``prompt`` without a turn; refuses bad input before storing."""
        checked = self.check(caller, prompt=prompt, language=language, model=model)
        return await self._create(caller, key, checked)

    async def _create(self, caller: Caller, key: SessionKey, checked: StartCheck) -> Session:
        return await self.store.create_session(
            key=key,
            owner=caller.user,
            language=checked.language.name,
            model=checked.model.name,
            title=checked.prompt.splitlines()[0][:80],
        )

    async def find(self, key: SessionKey) -> Session | None:
        """The session living in a thread, if any (adapters ignore threads that are not)."""
        return await self.store.find_session(key)

    async def get(self, session_id: int, caller: Caller | None = None) -> Session:
        """The session ``session_id`` as ``caller`` may see it: in their platform and
        workspace, and with ``owned``-style checks left to :meth:`owned`."""
        session = await self.store.get_session(session_id)
        if session is None or (caller is not None and not self.visible(caller, session)):
            raise SessionNotFound(session_id)
        return session

    async def owned(self, session_id: int, caller: Caller) -> Session:
        """The session ``session_id`` if ``caller`` owns it."""
        session = await self.get(session_id, caller)
        if caller.user != session.owner:
            raise NotOwner(session_id)
        return session

    async def list_sessions(
        self, caller: Caller, *, limit: int = 25, search: str | None = None
    ) -> list[Session]:
        """The caller's sessions in their workspace, newest first; those without a version yet
        (a failed first ask, a non-code answer) are left out. ``search``: title or requests."""
        return await self.store.list_sessions(
            owner=caller.user,
            platform=caller.platform,
            workspace=caller.workspace,
            limit=limit,
            search=search,
            with_versions=True,
        )

    async def show(
        self, session_id: int, *, number: int | None = None, caller: Caller | None = None
    ) -> tuple[Session, Version | None]:
        """The caller's own session and one of its versions (the latest by default)."""
        session = await (self.owned(session_id, caller) if caller else self.get(session_id))
        return session, await self.version(session, number)

    async def version(self, session: Session, number: int | None = None) -> Version | None:
        """A version of ``session`` (the latest by default; None when it has none yet)."""
        version = await self.store.get_version(session.id, number)
        if number is not None and version is None:
            raise UserError(f"Session {session.id} has no version {number}.")
        return version

    async def diff(
        self,
        session_id: int,
        caller: Caller,
        old: int | None = None,
        new: int | None = None,
        *,
        owned: bool = False,
    ) -> Comparison:
        """What changed from version ``old`` to ``new``: by default the last two; ``new``
        alone, the one before it; ``old`` alone, against the latest. Anyone in the thread may
        compare (``owned``: only the owner, as ``/snippets diff`` and the CLI ask)."""
        session = await (self.owned(session_id, caller) if owned else self.get(session_id, caller))
        latest = await self.version(session)
        if latest is None:
            raise NothingToDo(f"Snippet #{session.id} has no version yet.")
        b = latest if new is None else await self._numbered(session, new)
        if old is None and b.number == 1:
            raise NothingToDo(
                f"Version 1 is the first of #{session.id}: there is nothing to compare it with."
            )
        a = await self._numbered(session, b.number - 1 if old is None else old)
        return Comparison(session=session, old=a, new=b, diff=unified_diff(session.id, a, b))

    async def _numbered(self, session: Session, number: int) -> Version:
        version = await self.version(session, number)
        assert version is not None  # version() refuses a missing number
        return version

    def revert(self, session: Session, caller: Caller, number: int) -> TurnStream:
        """A new version whose code is version ``number``'s (history stays append-only),
        in the thread's turn order like any turn; no model is asked."""
        if not self.visible(caller, session):
            raise SessionNotFound(session.id)
        self._access.check(user=caller.user, channel=caller.channel)
        self._rate.check(self._rate_key(caller))
        ticket = self._queue.join(session.key)
        return TurnStream(self._queue, ticket, self._revert(session.id, number, ticket))

    async def _revert(self, session_id: int, number: int, ticket: Ticket) -> AsyncGenerator[Reply]:
        if ticket.ahead:
            yield Waiting(position=ticket.ahead)
        await ticket.wait()
        session = await self.get(session_id)
        old = await self._numbered(session, number)
        if old.number == session.version_count:
            raise NothingToDo(f"Version {number} is already the latest of #{session.id}.")
        try:
            version = await self.store.add_version(
                session.id,
                request=f"Revert to version {number}",
                code=old.code,
                note=old.note,
                model=old.model,
                prompt_tokens=None,
                completion_tokens=None,
                latency_ms=0,
            )
        except SessionGone:
            raise SessionNotFound(session_id) from None
        session = dataclasses.replace(
            session, version_count=version.number, updated_at=version.created_at
        )
        yield Done(session=session, version=version)

    async def delete(self, session_id: int, caller: Caller) -> Session:
        """Delete a session and everything in it; owner only. Cancels nothing already running."""
        session = await self.owned(session_id, caller)
        await self.store.delete_session(session_id)
        return session

    @staticmethod
    def visible(caller: Caller, session: Session) -> bool:
        """A session is reachable only from its own platform and workspace."""
        return (caller.platform, caller.workspace) == (
            session.key.platform,
            session.key.workspace,
        )

    async def check_rate(self, caller: Caller) -> None:
        """Count one request of ``caller`` against the rate limit (runs, tests), here and in
        the replicas' shared window."""
        key = self._rate_key(caller)
        self._rate.check(key)
        await self._rate.count(key)

    def _check_model_offered(self, caller: Caller, spec: ModelSpec) -> None:
        """Chat users pick from the catalog: an ad-hoc reference could make the bot download
        arbitrary weights or spend the operator's key on any model."""
        catalog = self.engines.catalog
        if (
            caller.trusted
            or self.settings.allow_any_model
            or spec.name in catalog
            or spec.ref == self.engines.resolve(None).ref
        ):
            return
        raise UnknownModelRef(
            f"Model {spec.name!r} is not offered here. Choose one of: {', '.join(catalog.names())}."
        )

    @staticmethod
    def _rate_key(caller: Caller) -> str:
        return f"{caller.platform}:{caller.workspace}:{caller.user}"

    def _request(
        self, caller: Caller, text: str, uploads: Sequence[Upload]
    ) -> tuple[str | None, tuple[Upload, ...]]:
        """A message's request (admitted) and its files; None when it is files only."""
        text, files = as_text(text, uploads)
        return (self._admit(caller, text) if text.strip() or not files else None), files

    def _admit(self, caller: Caller, text: str) -> str:
        """The checks every turn passes (allow-lists, prompt size, rate); the stripped text."""
        self._access.check(user=caller.user, channel=caller.channel)
        request = check_prompt(text, limit=self.settings.max_prompt_chars)
        self._rate.check(self._rate_key(caller))
        return request

    # -- turns -------------------------------------------------------------------------------

    def open(
        self,
        caller: Caller,
        key: SessionKey,
        checked: StartCheck,
        *,
        uploads: Sequence[Upload] = (),
    ) -> TurnStream:
        """Start a session in the thread ``key`` (already posted) and make its version 1,
        with ``uploads`` (files that came with the first message) stored first, so that
        version 1 sees them.

        Takes the thread's line at once: a reply that arrives while the session is being
        stored waits for this first turn.
        """
        ticket = self._queue.join(key, opening=True)
        return TurnStream(
            self._queue, ticket, self._open(caller, key, checked, tuple(uploads), ticket)
        )

    async def _open(
        self,
        caller: Caller,
        key: SessionKey,
        checked: StartCheck,
        uploads: tuple[Upload, ...],
        ticket: Ticket,
    ) -> AsyncGenerator[Reply]:
        request = self._admit(caller, checked.prompt)
        await self._rate.count(self._rate_key(caller))
        await ticket.wait()
        session = await self._create(caller, key, checked)
        if uploads:
            yield await self._attach(session, uploads)
        async with contextlib.aclosing(self._turn(session, request, None)) as events:
            async for event in events:
                yield event

    def reply(
        self, caller: Caller, key: SessionKey, text: str, *, uploads: Sequence[Upload] = ()
    ) -> TurnStream:
        """A message in the thread ``key``: the next version when the thread is a session.

        ``uploads`` (files posted with the message) are stored with the session first; a
        message of files only stores them and ends after :class:`Attached`. Raises
        :class:`NotASession` from the stream (before any event) when the thread is not a
        session; the adapter decides whether that is worth a word (a mention) or silence.
        """
        ticket = self._queue.join(key)
        return TurnStream(self._queue, ticket, self._reply(caller, key, text, uploads, ticket))

    async def _reply(
        self, caller: Caller, key: SessionKey, text: str, uploads: Sequence[Upload], ticket: Ticket
    ) -> AsyncGenerator[Reply]:
        session = await self.store.find_session(key)
        waited = False
        if session is None and self._queue.opening(key):
            # the turn opening the thread is ahead, its session not stored yet
            yield Waiting(position=ticket.ahead)
            await ticket.wait()
            waited = True
            session = await self.store.find_session(key)
        if session is None:
            raise NotASession()
        request, files = self._request(caller, text, uploads)
        if request is not None:
            await self._rate.count(self._rate_key(caller))
        queued = self._queued(session.id, ticket, request, None, files, waited=waited)
        async with contextlib.aclosing(queued) as events:
            async for event in events:
                yield event

    def turn(
        self,
        session: Session,
        caller: Caller,
        text: str,
        *,
        base: int | None = None,
        uploads: Sequence[Upload] = (),
    ) -> TurnStream:
        """The next version of ``session`` from ``text`` (and ``uploads``, stored first; files
        without text are only stored).

        Refusals (empty or oversized text, rate limit, allow-lists) raise :class:`UserError`
        here, before the turn takes a place in line. Engine failures end the stream with
        :class:`Failed`, keeping the request for a retry; the session stays usable. With
        ``base``, the turn only goes ahead if version ``base`` is still the current one (a fix
        made from that version's failure must not land on a newer version).
        """
        if not self.visible(caller, session):
            raise SessionNotFound(session.id)
        request, files = self._request(caller, text, uploads)
        ticket = self._queue.join(session.key)
        queued = self._queued(
            session.id, ticket, request, base, files, rate_key=self._rate_key(caller)
        )
        return TurnStream(self._queue, ticket, queued)

    async def retry(
        self, caller: Caller, session_id: int, failure: int | None = None
    ) -> AsyncGenerator[Reply]:
        """Send a failed request again: ``failure`` (a Retry button's), or the latest one.

        Each failure is retried once; a second press finds it gone and is told so.
        """
        session = await self.get(session_id, caller)
        self._access.check(user=caller.user, channel=caller.channel)
        self._rate.check(self._rate_key(caller), count=False)
        taken = await self.store.take_failure(session.id, failure)
        if taken is None:
            raise NothingToDo(
                "Nothing to retry: that request was already sent again, or the last request "
                "of this snippet did not fail."
            )
        async with contextlib.aclosing(self.turn(session, caller, taken.request)) as events:
            async for event in events:
                yield event

    async def _queued(
        self,
        session_id: int,
        ticket: Ticket,
        request: str | None,
        base: int | None,
        uploads: Sequence[Upload] = (),
        *,
        waited: bool = False,
        rate_key: str | None = None,
    ) -> AsyncGenerator[Reply]:
        """``rate_key``: whose request this is, counted in the replicas' shared rate window
        (files alone are free; :meth:`reply` counted it already)."""
        if rate_key is not None and request is not None:
            await self._rate.count(rate_key)
        if ticket.ahead and not waited:
            yield Waiting(position=ticket.ahead)
        await ticket.wait()
        session = await self.store.get_session(session_id)
        if session is None:
            raise SessionNotFound(session_id)  # deleted while this turn waited
        if uploads:
            yield await self._attach(session, uploads)
        if request is None:
            return
        async with contextlib.aclosing(self._turn(session, request, base)) as events:
            async for event in events:
                yield event

    async def answered(
        self, key: SessionKey, request: str, since: float
    ) -> tuple[Session, Version] | None:
        """The version a request made at or after ``since`` in thread ``key``, if it was
        stored (a durable turn whose process died after storing it must not ask again)."""
        session = await self.store.find_session(key)
        if session is None:
            return None
        latest = await self.store.get_version(session.id)
        if latest is None or latest.created_at < since or latest.request != request.strip():
            return None
        return session, latest

    # -- files -----------------------------------------------------------------------------

    async def attach(self, session: Session, caller: Caller, uploads: Sequence[Upload]) -> Attached:
        """Store ``uploads`` with ``session`` now (``/attach``: not a turn, no line)."""
        if not self.visible(caller, session):
            raise SessionNotFound(session.id)
        return await self._attach(session, uploads)

    async def _attach(self, session: Session, uploads: Sequence[Upload]) -> Attached:
        stored = await self.store.list_files(session.id)
        kept: list[SessionFile] = []
        refused: list[tuple[str, Refusal]] = []
        for upload in uploads:
            reason = files.refusal(upload, stored)
            if reason is not None or upload.data is None:
                refused.append((upload.name, reason or "too_big"))
                continue
            item = await self.store.add_file(session.id, files.safe_name(upload.name), upload.data)
            stored = [other for other in stored if other.name != item.name] + [item]
            kept.append(item)
        return Attached(session=session, stored=tuple(kept), refused=tuple(refused))

    async def files(self, session_id: int, caller: Caller) -> tuple[Session, list[SessionFile]]:
        """A session's files, for anyone who can see the session."""
        session = await self.get(session_id, caller)
        return session, await self.store.list_files(session.id)

    async def _turn(
        self, session: Session, request: str, base: int | None
    ) -> AsyncGenerator[Reply]:
        """One answer, counted in the in-flight gauge while it is written; what is logged
        meanwhile names the session."""
        logs.session_id.set(session.id)
        self.metrics.in_flight.inc()
        try:
            async with contextlib.aclosing(self._answer(session, request, base)) as events:
                async for event in events:
                    yield event
        finally:
            self.metrics.in_flight.dec()

    async def _answer(
        self, session: Session, request: str, base: int | None
    ) -> AsyncGenerator[Reply]:
        language = self.language(session.language)
        # both reads at once: under a burst each waits its turn for a reader connection
        history, stored = await asyncio.gather(
            self.store.list_versions(session.id), self.store.list_files(session.id)
        )
        if base is not None and len(history) != base:
            raise StaleVersion("Fix", session.id, base, len(history))
        if not history and session.updated_at > session.created_at:
            # the first answer failed before (a failure touches its session): keep what was
            # asked then, with what is asked now
            earlier = await self.store.latest_failure(session.id)
            if earlier is not None and earlier.request != request:
                request = f"{earlier.request}\n\n{request}"
        try:
            spec = self.engines.resolve(session.model)
            engine = self.engines.get(spec)
        except (UserError, EngineError) as err:
            yield await self._fail(session, request, str(err))
            return
        if engine.loads_weights and self.engines.is_loading(spec):  # a client starts at once
            yield Loading(model=spec.name, position=self.engines.waiting(spec) + 1)
        await self.engines.wait_ready(spec)
        if engine.pending:
            yield Loading(model=spec.name, position=engine.pending + 1, busy=True)
        yield Started(session=session, request=request, number=len(history) + 1, model=spec.name)

        budget = PromptBudget(
            context_window=engine.context_window,
            reserve_for_answer=min(spec.max_new_tokens, engine.context_window // 2),
        )
        attached = files.describe(stored)
        try:
            messages = build_messages(
                language=language,
                history=history,
                request=f"{request}\n\n{attached}" if attached else request,
                budget=budget,
                count_tokens=engine.count_tokens,  # real counts where the engine has them
                available=self._packages(language.name) if self._packages else None,
            )
        except ContextTooSmall as err:
            yield await self._fail(session, request, str(err))
            return
        generation = GenerationRequest(
            messages=messages,
            temperature=self.settings.temperature,
            max_tokens=budget.reserve_for_answer,
            prediction=history[-1].code if history else None,  # an adjust turn repeats most
            cache_key=_cache_key(session),
            user=_user_id(session),
        )
        usage = Usage()
        began = time.perf_counter()
        deadline = asyncio.get_running_loop().time() + self.settings.turn_timeout
        other: Language | None = None
        for attempt in range(2):  # a block in another language is asked for again, once
            parts: list[str] = []
            try:
                async with contextlib.aclosing(engine.stream(generation, usage)) as deltas:
                    size = 0
                    while size < self.settings.max_answer_chars:
                        async with asyncio.timeout_at(deadline):  # only the engine is timed,
                            delta = await anext(deltas, None)  # not the consumer of events
                        if delta is None:
                            break
                        parts.append(delta)
                        size += len(delta)
                        yield Progress(delta=delta, text="".join(parts))
            except EngineError as err:
                yield await self._fail(session, request, str(err))
                return
            except TimeoutError:
                timeout = TurnTimeout(self.settings.turn_timeout)
                yield await self._fail(session, request, str(timeout))
                return
            answer = "".join(parts)
            extraction = extract_code(answer)
            other = self._other_language(extraction, language)
            if other is None or attempt:
                break
            generation = dataclasses.replace(
                generation,
                messages=(*generation.messages, *language_reminder(answer, language, other)),
            )
        latency_ms = round((time.perf_counter() - began) * 1000)
        self.metrics.observe_answer(model=spec.name, seconds=latency_ms / 1000)
        self.metrics.count_tokens(
            model=spec.name, prompt=usage.prompt_tokens, completion=usage.completion_tokens
        )
        if other is not None:  # never stored as this session's language
            self.metrics.turns.labels(outcome="non_code").inc()
            yield NonCode(session=session, text=answer.strip(), language=other.label)
            return
        if extraction is None:
            await self.store.clear_failures(session.id)
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
        except SessionGone:  # nothing to retry: the session is gone
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

    def _other_language(self, extraction: Extraction | None, language: Language) -> Language | None:
        """The language a block is tagged with when it is a known one other than ``language``
        (an untagged block, or a tag that names no language, counts as the session's)."""
        if extraction is None or not extraction.info:
            return None
        tag = extraction.info.split()[0]
        if tag not in self.languages:
            return None
        tagged = self.languages.get(tag)
        return None if tagged == language else tagged

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
            cache_key=_cache_key(session),
            user=_user_id(session),
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
            raise TurnTimeout(self.settings.turn_timeout) from None
        return "".join(parts)

    async def _fail(self, session: Session, request: str, message: str) -> Failed:
        """Keep the request (the session's only failure: the store drops an older one)."""
        self.metrics.turns.labels(outcome="failed").inc()
        try:
            kept = await self.store.add_failure(session.id, request=request, message=message)
        except SessionGone:
            return Failed(session=session, message=message, request=request)
        actions = (
            Action(kind="retry", session_id=session.id, failure=kept.id),
            Action(kind="delete", session_id=session.id),
        )
        return Failed(
            session=session, message=message, request=request, failure=kept.id, actions=actions
        )


def _cache_key(session: Session) -> str:
    """The session's prompt-cache key: every turn of a session shares the same prefix."""
    return f"codethread-{session.id}"


def _user_id(session: Session) -> str:
    """A stable, hashed id of the session's owner for the server's abuse detection.

    The owner, not the person who wrote this turn: ``complete`` (unit tests for a version) has
    no caller, and the owner is who answers for the thread. Hashed so that no platform id
    leaves the bot; the platform and workspace keep equal ids of two platforms apart.
    """
    key = session.key
    who = f"{key.platform}:{key.workspace}:{session.owner}"
    return hashlib.sha256(who.encode()).hexdigest()
