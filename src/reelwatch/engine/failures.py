"""How a task fails, and what follows: the engine's ``TaskFailure`` and ``RetryPolicy``.

A handler raises ``TaskFailure(code, message)``; the workflow's ``RetryPolicy`` says per
code whether it is retried, how often and after what backoff, within a cap on attempts
in all. The engine knows no codes of its own beyond the three it raises itself
(``unknown``, ``timeout``, ``worker_lost``); the application gives the rest.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

# The codes the engine itself fails a task with.
UNKNOWN = "unknown"  # the handler raised something other than a TaskFailure
TIMEOUT = "timeout"  # the handler ran past its task's time limit
WORKER_LOST = "worker_lost"  # the worker stopped heartbeating and its lease ran out


class TaskFailure(Exception):
    """A task ended in a known way; ``code`` says which (the policy's key).

    ``detail`` carries evidence for operators (a stderr tail), never shown to users.
    """

    def __init__(self, code: str, message: str, *, detail: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.detail = detail

    def rewritten(self, rewrite: Callable[[str], str]) -> TaskFailure:
        """A copy (of the same class) with ``rewrite`` applied to its message and detail."""
        rewritten = self.with_message(rewrite(self.message))
        rewritten.detail = rewrite(self.detail)
        return rewritten

    def with_message(self, message: str) -> TaskFailure:
        """A copy (of the same class) that says ``message``."""
        changed = type(self).__new__(type(self))
        changed.__dict__.update(self.__dict__)  # a subclass's attributes too
        changed.message, changed.args = message, (message,)
        return changed

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.code)!r}, {self.message!r})"


@dataclass(frozen=True)
class RetryRule:
    """What follows from one code: retried or not, how often, after what backoff."""

    recoverable: bool = True
    max_attempts: int = 3
    backoff_base_s: float = 30.0
    backoff_max_s: float = 600.0

    def retry_delay(self, attempt: int, scale: float = 1.0) -> float:
        """Seconds to wait before attempt ``attempt + 1``: exponential, with equal jitter.

        Half the delay is fixed and half random, so a burst of failures (a storage
        outage) spreads its retries without ever retrying sooner than half the backoff.
        """
        delay = min(self.backoff_max_s, self.backoff_base_s * 2.0 ** max(0, attempt - 1)) * scale
        return float(delay / 2 + random.uniform(0, delay / 2))


PERMANENT = RetryRule(recoverable=False, max_attempts=1, backoff_base_s=0, backoff_max_s=0)


# The engine's own codes, by default: a lost worker is not the task's fault, so its task
# runs again at once.
ENGINE_RULES: Mapping[str, RetryRule] = {
    WORKER_LOST: RetryRule(max_attempts=5, backoff_base_s=0, backoff_max_s=0),
    TIMEOUT: RetryRule(max_attempts=3, backoff_base_s=60, backoff_max_s=600),
}


def _unchanged(text: str) -> str:
    return text


@dataclass(frozen=True)
class RetryPolicy:
    """A workflow's retry rules: each code spends its own budget of attempts (``rules``,
    ``default`` for the rest) within ``max_attempts`` in all.

    ``dependency_codes`` mean a dependency was down: a worker whose preflight sees the
    dependency back wakes the tasks backing off after one. ``redact`` rewrites a
    failure's text before it is recorded (events, observers), e.g. to drop server paths.
    """

    rules: Mapping[str, RetryRule] = field(default_factory=lambda: dict(ENGINE_RULES))
    default: RetryRule = RetryRule()
    max_attempts: int = 20
    dependency_codes: frozenset[str] = frozenset()
    redact: Callable[[str], str] = _unchanged

    def rule_for(self, code: str) -> RetryRule:
        return self.rules.get(code, self.default)

    def retries(self, code: str, *, failures_with_code: int, attempts_used: int) -> bool:
        """Whether a task that failed with ``code`` (``failures_with_code`` times now, this
        one included, over ``attempts_used`` attempts) is tried again."""
        rule = self.rule_for(code)
        return (
            rule.recoverable
            and failures_with_code < rule.max_attempts
            and attempts_used < self.max_attempts
        )


DEFAULT_POLICY = RetryPolicy()
