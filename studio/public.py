"""Public mode (``--public``; on by default on a Space without --auth): many visitors, one studio.

What a public studio adds, as plain Python (no Gradio, no torch):

* **owners**: each visitor is an owner id, a hash of its visitor cookie (``visitor_owner``) or,
  for a client that keeps no cookie, of its gradio session (``session_owner``). The gallery
  records it on every image and shows each visitor only its own (``GalleryStore(..., owner=)``).
  The hash is what the database holds: never the cookie itself.
* **limits** (``Limits``): size, steps, images per request and jobs waiting or running per
  visitor, each set by a flag (``--max-size`` ...). A request over one is refused before anything
  is written, with a message naming the limit (``OverLimit``).
* **a fair queue** (``FairQueue``): generations take turns by visitor, round-robin, so a flood from
  one visitor (capped at ``max_queue`` jobs anyway) never starves another: the visitor served
  longest ago goes next.
"""

from __future__ import annotations

import hashlib
import itertools
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from studio.errors import Cancelled, InvalidRequest
from studio.requests import GenerationRequest

TOKEN = re.compile(r"[A-Za-z0-9_-]{22,64}")     # a visitor cookie's value (secrets.token_urlsafe)


def visitor_owner(token: str) -> str:
    return hashlib.sha256(f"visitor:{token}".encode()).hexdigest()[:32]


def session_owner(session_hash: str) -> str:
    return hashlib.sha256(f"session:{session_hash}".encode()).hexdigest()[:32]


def owner_from(cookie: str | None, session_hash: str | None) -> str:
    """The owner id of a request: its visitor cookie when it has a well-formed one, else its gradio
    session. Neither: ``InvalidRequest`` (a public studio serves no anonymous calls)."""
    if cookie and TOKEN.fullmatch(cookie):
        return visitor_owner(cookie)
    if session_hash:
        return session_owner(session_hash)
    raise InvalidRequest("session", "a public studio answers calls from a browser page or an API client session "
                                    "only (no visitor cookie, no session)")


class OverLimit(InvalidRequest):
    """A request over one of a public studio's limits. The message names the limit and its flag."""


@dataclass(frozen=True, slots=True)
class Limits:
    max_size: int = 1024        # width and height, pixels
    max_steps: int = 50
    max_images: int = 4         # batch count x batch size, per request
    max_queue: int = 2          # generations waiting or running, per visitor

    def __post_init__(self) -> None:
        for name in ("max_size", "max_steps", "max_images", "max_queue"):
            if getattr(self, name) < 1:
                raise InvalidRequest(name, f"must be at least 1, got {getattr(self, name)}")

    def check(self, request: GenerationRequest, default_size: tuple[int, int] | None = None,
              default_steps: int | None = None) -> None:
        """Refuse ``request`` (``OverLimit``) when it asks for more than the limits; values it leaves
        to the model are checked at the model's defaults."""
        width = request.width or (default_size[0] if default_size else None)
        height = request.height or (default_size[1] if default_size else None)
        for name, value in (("width", width), ("height", height)):
            if value is not None and value > self.max_size:
                raise OverLimit(name, f"{value} is over this public studio's limit of {self.max_size} pixels "
                                      f"(the host sets it with --max-size); ask for a smaller image")
        steps = request.steps or default_steps
        if steps is not None and steps > self.max_steps:
            raise OverLimit("steps", f"{steps} is over this public studio's limit of {self.max_steps} steps "
                                     "(the host sets it with --max-steps); ask for fewer")
        if request.images_total > self.max_images:
            raise OverLimit("batch", f"{request.batch_count} x {request.batch_size} = {request.images_total} images "
                                     f"is over this public studio's limit of {self.max_images} per request "
                                     "(the host sets it with --max-images); ask for fewer")


class FairQueue:
    """Turns at ``slots`` generations at once, handed out round-robin by owner.

    ``turn(owner)`` first counts the job against the owner's ``max_queue`` (waiting or running;
    over it: ``OverLimit`` at once, nothing queued), then waits until a slot is free and no other
    waiting owner was served longer ago. One owner's jobs keep their own order."""

    def __init__(self, slots: int = 1, max_queue: int = 2) -> None:
        self.slots, self.max_queue = slots, max_queue
        self._cond = threading.Condition()
        self._running = 0
        self._held: dict[str, int] = {}              # owner -> jobs waiting or running
        self._waiting: list[tuple[int, str]] = []    # (ticket, owner), in arrival order
        self._served: dict[str, int] = {}            # owner -> the serial of its last turn
        self._tickets = itertools.count()
        self._serial = itertools.count(1)

    def waiting(self) -> int:
        with self._cond:
            return len(self._waiting)

    def _next(self) -> int | None:
        """The ticket to serve next: the first waiting job of the owner served longest ago."""
        best = None
        for ticket, owner in self._waiting:
            key = (self._served.get(owner, 0), ticket)
            if best is None or key < best[0]:
                best = (key, ticket)
        return best[1] if best else None

    @contextmanager
    def turn(self, owner: str, cancel: threading.Event | None = None,
             on_wait: Callable[[int], None] | None = None) -> Iterator[None]:
        """``on_wait(n)``: hears how many other jobs are waiting or running whenever that changes
        while this one waits, and 0 when its turn comes (it must not block)."""
        with self._cond:
            if self._held.get(owner, 0) >= self.max_queue:
                raise OverLimit("queue", f"you already have {self._held[owner]} generation(s) waiting or running, "
                                         f"this public studio's limit per visitor (the host sets it with "
                                         "--max-queue); wait for one to finish")
            self._held[owner] = self._held.get(owner, 0) + 1
            ticket = next(self._tickets)
            self._waiting.append((ticket, owner))
            told = None
            try:
                while not (self._running < self.slots and self._next() == ticket):
                    if cancel is not None and cancel.is_set():
                        raise Cancelled("cancelled while waiting for a turn; nothing was made")
                    others = self._running + len(self._waiting) - 1
                    if on_wait is not None and others != told:
                        on_wait(told := others)
                    self._cond.wait(timeout=0.2)
            except BaseException:
                self._waiting.remove((ticket, owner))
                self._release_hold(owner)
                raise
            self._waiting.remove((ticket, owner))
            self._running += 1
            self._served[owner] = next(self._serial)
        if on_wait is not None and told is not None:
            on_wait(0)
        try:
            yield
        finally:
            with self._cond:
                self._running -= 1
                self._release_hold(owner)

    def _release_hold(self, owner: str) -> None:
        self._held[owner] -= 1
        if not self._held[owner]:
            del self._held[owner]
        if not self._held:                # nobody waits: the turns start over (and the memory of owners goes)
            self._served.clear()
        self._cond.notify_all()


@dataclass
class PublicMode:
    """What a public Studio holds: its limits and its fair queue."""

    limits: Limits
    queue: FairQueue

    @classmethod
    def create(cls, limits: Limits | None = None, slots: int = 1) -> PublicMode:
        limits = limits or Limits()
        return cls(limits, FairQueue(slots, limits.max_queue))
