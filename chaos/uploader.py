"""Users uploading videos through the public API while the faults happen, as a patient
client would: an upload that is refused or cut off is tried again a little later."""

from __future__ import annotations

import random
import threading
from collections import Counter
from dataclasses import dataclass, field

import httpx

from chaos.journal import Journal
from chaos.media import Sample

UPLOAD_TIMEOUT_S = 60.0
RETRY_PAUSE_S = (0.5, 2.0)
THREADS = 2
BROKEN_SHARE = 1 / 3


@dataclass(frozen=True)
class User:
    email: str
    token: str


@dataclass(frozen=True)
class Accepted:
    """An upload answered 201: the service promised never to lose this video."""

    video_id: str
    user: User
    sample: Sample
    at_s: float


@dataclass(frozen=True)
class Refusal:
    """An upload attempt that did not get a 201, and what it got instead."""

    at_s: float
    sample: str
    status: int | None  # None: no HTTP answer (connection refused, cut, timed out)
    reason: str
    json_error: bool  # the body was SPEC §4's {"error": {"code", "message"}}


@dataclass
class UploadLog:
    accepted: list[Accepted] = field(default_factory=list)
    refusals: list[Refusal] = field(default_factory=list)
    abandoned: list[str] = field(default_factory=list)  # samples never accepted in time
    lock: threading.Lock = field(default_factory=threading.Lock)

    def refusal_reasons(self) -> Counter[str]:
        return Counter(r.reason for r in self.refusals)


@dataclass(frozen=True)
class Plan:
    """Which sample which user uploads when (seconds after the faults begin)."""

    at_s: float
    sample: Sample
    user: User


def plan_uploads(
    rng: random.Random, samples: list[Sample], users: list[User], count: int, spread_s: float
) -> list[Plan]:
    """``count`` uploads spread over ``spread_s``, a third of them broken, each kind
    taken in turn so that every sample is used when ``count`` allows."""
    broken_count = round(count * BROKEN_SHARE)
    chosen = _in_turn(rng, [s for s in samples if not s.good], broken_count)
    chosen += _in_turn(rng, [s for s in samples if s.good], count - broken_count)
    rng.shuffle(chosen)
    moments = sorted(rng.uniform(0, spread_s) for _ in chosen)
    return [Plan(at, sample, rng.choice(users)) for at, sample in zip(moments, chosen, strict=True)]


def _in_turn(rng: random.Random, kinds: list[Sample], count: int) -> list[Sample]:
    order = rng.sample(kinds, len(kinds))
    return [order[i % len(order)] for i in range(count)]


class Uploader:
    def __init__(
        self, url: str, journal: Journal, plans: list[Plan], *, give_up_at_s: float, seed: int
    ) -> None:
        self.url = url
        self.journal = journal
        self.plans = plans
        self.give_up_at_s = give_up_at_s
        self.seed = seed
        self.log = UploadLog()
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()

    def start(self) -> None:
        for index in range(THREADS):
            share = self.plans[index::THREADS]
            thread = threading.Thread(
                target=self._upload_all,
                args=(share, random.Random(self.seed + index)),
                name=f"uploader-{index}",
            )
            thread.start()
            self._threads.append(thread)

    def join(self) -> None:
        for thread in self._threads:
            thread.join()

    def stop(self) -> None:
        self._stop.set()
        self.join()

    def _upload_all(self, plans: list[Plan], jitter: random.Random) -> None:
        begin = self.journal.elapsed()
        for plan in plans:
            wait = begin + plan.at_s - self.journal.elapsed()
            if wait > 0 and self._stop.wait(wait):
                return
            self._upload_until_accepted(plan, jitter)

    def _upload_until_accepted(self, plan: Plan, jitter: random.Random) -> None:
        while self.journal.elapsed() < self.give_up_at_s:
            video_id = self._try_upload(plan)
            if video_id is not None:
                accepted = Accepted(video_id, plan.user, plan.sample, self.journal.elapsed())
                with self.log.lock:
                    self.log.accepted.append(accepted)
                return
            if self._stop.wait(jitter.uniform(*RETRY_PAUSE_S)):
                break
        with self.log.lock:
            self.log.abandoned.append(plan.sample.name)

    def _try_upload(self, plan: Plan) -> str | None:
        headers = {"Authorization": f"Bearer {plan.user.token}"}
        try:
            with plan.sample.path.open("rb") as handle:
                response = httpx.post(
                    f"{self.url}/api/v1/videos",
                    headers=headers,
                    files={"file": (plan.sample.path.name, handle)},
                    data={"title": f"chaos {plan.sample.name}"},
                    timeout=UPLOAD_TIMEOUT_S,
                )
        except httpx.TransportError as exc:
            self._refused(plan, None, f"no answer ({type(exc).__name__})", json_error=False)
            return None
        if response.status_code == 201:
            return str(response.json()["id"])
        self._refused(
            plan, response.status_code, _error_code(response), json_error=_is_json_error(response)
        )
        return None

    def _refused(self, plan: Plan, status: int | None, reason: str, *, json_error: bool) -> None:
        refusal = Refusal(
            round(self.journal.elapsed(), 1),
            plan.sample.name,
            status,
            f"{status} {reason}" if status else reason,
            json_error,
        )
        with self.log.lock:
            self.log.refusals.append(refusal)


def _is_json_error(response: httpx.Response) -> bool:
    try:
        error = response.json()["error"]
        return isinstance(error["code"], str) and isinstance(error["message"], str)
    except (ValueError, KeyError, TypeError):
        return False


def _error_code(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"]["code"])
    except (ValueError, KeyError, TypeError):
        return "(not a JSON error)"
