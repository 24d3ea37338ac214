"""How a request ends, for every user: aborted, failed before a response, redacted, finished,
paced. Kept apart from the stream loop (``users``) so the streaming users and the pooling user
account for a request in exactly the same way.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

import gevent
from locust.exception import CatchResponseError

from locust_llm import plugin
from locust_llm.backoff import is_immediate, kind_of
from locust_llm.errors import CLIENT, fail
from locust_llm.metrics.record import LLMResult
from locust_llm.responses import abort

__all__ = ["RequestAccounting", "Unreported"]

_perf = time.perf_counter


class Unreported(Exception):
    """Leaves the response's block so that Locust records nothing for it."""


def _pending() -> int:
    """Watchers ready in this turn of the event loop (other sockets with bytes to read)."""
    return gevent.get_hub().loop.pendingcnt


def _let_readers_first() -> BaseException | None:
    """Yield once when other sockets are ready, before this request's accounting runs.

    Why: finishing a request (collector, stats rows, record) is the costliest step per
    request, and streams in step finish together: done at once, it delays every other
    stream's read by that much, and their tokens share reads. The stream is complete, so
    waiting costs it nothing. A user stopped during the yield is returned, to be raised once
    the request is accounted: a complete request is never lost to the stop.
    """
    if not _pending():
        return None
    try:
        gevent.sleep(0)
    except BaseException as e:
        return e
    return None


class RequestAccounting:
    """Mixed into the Locust users (``self.llm``, ``self._backoff``, ``self.environment`` and
    ``self.host`` are theirs)."""

    llm: Any
    _backoff: Any
    environment: Any
    host: str | None

    @contextlib.contextmanager
    def _accounted(self, res: LLMResult, path: str, t0: float) -> Iterator[None]:
        """How every request ends, in one place (streams and pooling answers alike): a stopped
        user or a caller's timeout aborts it and re-raises; anything raised before a response
        existed (e.g. the HTTP client refused a header) is a counted failure, never a success
        with no tokens or a bare task traceback; then the error is redacted, the request
        finished, and the user paced if it failed at once."""
        llm = self.llm
        stopped: BaseException | None = None
        try:
            yield
            if res.error is None and not res.aborted:
                stopped = _let_readers_first()
        except Unreported:
            pass
        except (gevent.GreenletExit, gevent.Timeout, KeyboardInterrupt) as e:
            if res.error is None:  # stopped while connecting/sending: not a completed request
                abort(res, e)
            raise
        except Exception as e:
            if res.error is None:
                msg = plugin.redact(f"request not sent: {type(e).__name__}: {e}", llm.api_key)
                fail(res, CLIENT, f"request not sent: {type(e).__name__}", msg)
                self._report_failure(res, path, (_perf() - t0) * 1000)
        finally:
            if res.error is not None:
                res.error = plugin.redact(res.error, llm.api_key)
            llm.finish(res)
        if stopped is not None:
            raise stopped
        self._back_off(res)

    def _back_off(self, res: LLMResult) -> None:
        failed = res.error is not None and is_immediate(
            res.status, res.ttft is not None, res.aborted
        )
        delay = self._backoff.next_delay(failed)
        if delay <= 0:
            return
        kind = res.error_key or kind_of(res.status, res.error or "")
        logged = self.llm.backoff_logged
        if kind not in logged:
            logged.add(kind)
            plugin.log.warning(
                "locust-llm: requests fail at once (%s); each user now waits up to %gs "
                "between such attempts (logged once per kind)",
                res.error,
                self._backoff.cap,
            )
        gevent.sleep(delay)

    def _report_failure(self, res: LLMResult, path: str, response_time_ms: float) -> None:
        """A failure Locust's own request machinery never saw: put it in its stats."""
        self.environment.events.request.fire(
            request_type="POST",
            name=res.name,
            response_time=response_time_ms,
            response_length=0,
            response=None,
            context={},
            exception=CatchResponseError(res.error),
            start_time=res.t_start,
            url=(self.host or "") + path,
        )

    def _refuse(
        self, name: str, path: str, error: str, key: str = "not streamed", items: int | None = None
    ) -> LLMResult:
        """A request the locustfile asked for that cannot be measured or sent (``key``: its
        counting key; ``items``: 0 for a pooling request): a counted failure with the reason
        (never sent), paced by the back-off like any failure that repeats at once."""
        res = LLMResult(name=name, model="", items=items)
        res.t_start = time.time()
        fail(res, CLIENT, key, error)
        self._report_failure(res, path, 0.0)
        self.llm.collector.request_started(res.t_start)
        self.llm.finish(res)
        self._back_off(res)
        return res
