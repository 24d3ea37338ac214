"""The engine model: who runs, who waits, and when each token exists.

Two schedulers behind one interface (``submit`` / ``deliveries`` / ``finish``):

* ``ConstantEngine`` (``--emu-profile constant``): admission up to ``max_num_seqs`` (default
  unlimited), then each stream is paced on its own against the monotonic clock: token k is due at
  ``t_admit + ttft + k * itl`` (or a cumulative lognormal schedule), never as accumulated sleeps,
  so the client's timing error can be judged against an exact intended schedule. With
  ``ttft = itl = 0`` every token is due at once and the server writes them in big sends (the
  "ingest ceiling" mode).
* ``BatchEngine`` (roofline profiles): vLLM V1's continuous batching in ONE greenlet. Each step:
  running sequences first (one decode token each, or the next chunk of an unfinished prefill),
  then waiting ones are admitted while ``max_num_seqs``, the ``max_num_batched_tokens`` budget and
  KV capacity allow; when KV runs out the most recently admitted sequence is preempted
  (recompute: its KV is dropped, it rejoins the head of the queue and re-prefills prompt +
  generated). The step lasts ``profile.step_time(...)`` and its tokens appear at its end.

Both keep vLLM's block prefix cache (``prefix_cache``): leading prompt blocks seen before are
not prefilled again (the batch engine computes fewer tokens; the constant engine scales the
TTFT by the uncached share). Blocks are cached when a prefill ends and evicted, least recently
used first, when the KV space (the batch engine's capacity; for the constant profile
``--num-gpu-blocks-override`` or ``CONSTANT_CACHE_BLOCKS`` blocks) is needed.

The scheduling itself (``schedule_step`` / ``complete_step``) is plain logic, testable without
sleeping; only ``_loop`` touches the clock.
"""

from __future__ import annotations

import math
import os
import random
import time
from collections import deque
from collections.abc import Iterator

import gevent
from gevent.event import Event

from .cli import Config
from .prefix_cache import PrefixCache, created_tokens

perf_counter = time.perf_counter  # CLOCK_MONOTONIC on Linux
CONSTANT_CACHE_BLOCKS = 32768  # constant profile's cache: ~Llama-3.1-8B's KV on one 80 GB GPU


class QueueFull(Exception):
    """``--max-num-queued-reqs`` reached: the server answers 503."""


class Seq:
    """One request inside the engine."""

    __slots__ = (
        "n_out",
        "prompt_tokens",
        "arrival",
        "blocks",
        "admitted_at",
        "first_token_at",
        "computed",
        "prefill_target",
        "generated",
        "kv",
        "cached",
        "created",
        "held",
        "done",
        "aborted",
        "event",
        "queued",
        "jitter_seed",
    )

    def __init__(
        self,
        prompt_tokens: int,
        n_out: int,
        arrival: float,
        blocks: tuple = (),
        jitter_seed: int = 0,
    ):
        self.prompt_tokens = prompt_tokens
        self.n_out = n_out
        self.arrival = arrival
        self.blocks = blocks  # prefix-cache keys of the prompt's full blocks
        self.admitted_at: float | None = None
        self.first_token_at: float | None = None
        self.computed = 0  # tokens whose KV is computed in the current residency
        self.prefill_target = prompt_tokens
        self.generated = 0  # output tokens that exist (may be written to the client)
        self.kv = 0  # KV tokens held
        self.cached = 0  # prompt tokens found in the prefix cache at first admission
        self.created = 0  # prompt tokens this request wrote to the cache (its prefill)
        self.held: tuple = ()  # cache keys it references while it runs
        self.done = False
        self.aborted = False
        self.event = Event()
        self.queued = False
        self.jitter_seed = jitter_seed


def sleep_until(deadline: float) -> None:
    """Sleep until ``perf_counter() >= deadline`` (libev timers may round; loop until due)."""
    while True:
        d = deadline - perf_counter()
        if d <= 0:
            return
        gevent.sleep(d)


class _Base:
    def __init__(self, cfg: Config, metrics=None, num_blocks: int = 0) -> None:
        self.cfg = cfg
        self.metrics = metrics
        self.max_num_seqs = cfg.max_num_seqs
        self.waiting: deque[Seq] = deque()
        self.cache = PrefixCache(cfg.block_size, num_blocks) if cfg.enable_prefix_caching else None

    # -- prefix cache --
    def _hit(self, seq: Seq, tokens: int) -> int:
        """Cached tokens a (re)admission of ``seq`` with ``tokens`` to compute finds."""
        return self.cache.match(seq.blocks, tokens) if self.cache is not None else 0

    def _take_hit(self, seq: Seq, cached: int, first: bool) -> None:
        """``seq`` is admitted with ``cached`` tokens from the cache: reference them, count."""
        if self.cache is None:
            return
        seq.held = self.cache.acquire(seq.blocks[: cached // self.cfg.block_size])
        if first:  # vLLM's counters leave re-admissions after preemption out
            seq.cached = cached
            if self.metrics is not None:
                self.metrics.prefix_lookup(seq.prompt_tokens, cached)

    def _prefilled(self, seq: Seq, first: bool) -> None:
        """Its prefill ended: its full prompt blocks are cached now."""
        if self.cache is None:
            return
        seq.held = self.cache.insert(seq.blocks, seq.held)
        if first:
            seq.created = created_tokens(seq.prompt_tokens, seq.cached, self.cfg.block_size)

    def _release(self, seq: Seq) -> None:
        if self.cache is not None and seq.held:
            self.cache.release(seq.held)
        seq.held = ()

    def _check_queue(self) -> None:
        limit = self.cfg.max_num_queued_reqs
        if limit is not None and len(self.waiting) >= limit:
            raise QueueFull(f"the waiting queue is full ({limit} requests)")

    @property
    def num_waiting(self) -> int:
        return len(self.waiting)


class ConstantEngine(_Base):
    """Admission control + exact per-stream pacing (no batching delay)."""

    def __init__(self, cfg: Config, metrics=None) -> None:
        super().__init__(cfg, metrics, cfg.num_gpu_blocks_override or CONSTANT_CACHE_BLOCKS)
        self.num_running = 0

    def kv_usage(self) -> float:
        return 0.0

    def submit(self, seq: Seq) -> None:
        """Admit now, queue, or raise QueueFull."""
        if self.num_running < self.max_num_seqs and not self.waiting:
            self._admit(seq, seq.arrival)
            return
        self._check_queue()
        seq.queued = True
        self.waiting.append(seq)

    def _admit(self, seq: Seq, now: float) -> None:
        self.num_running += 1
        self._take_hit(seq, self._hit(seq, seq.prompt_tokens), first=True)
        seq.admitted_at = now
        seq.queued = False
        seq.event.set()

    def finish(self, seq: Seq) -> None:
        """The request is over (completed, failed or client gone): free its slot."""
        if seq.done:
            return
        seq.done = True
        if seq.queued:
            seq.queued = False
            self.waiting.remove(seq)
            return
        if seq.admitted_at is None:
            return
        self._release(seq)
        self.num_running -= 1
        now = perf_counter()
        while self.waiting and self.num_running < self.max_num_seqs:
            self._admit(self.waiting.popleft(), now)

    def schedule(self, seq: Seq) -> Iterator[float]:
        """Due times of tokens 0..n-1 (absolute perf_counter seconds)."""
        cfg = self.cfg
        ttft = cfg.ttft_s
        if seq.cached and seq.prompt_tokens:  # prefill of the cached tokens is skipped
            ttft *= (seq.prompt_tokens - seq.cached) / seq.prompt_tokens
        t = seq.admitted_at + ttft
        itl = cfg.itl_s
        if cfg.itl_dist == "lognormal" and itl > 0:
            rng = random.Random(seq.jitter_seed)
            sigma = math.sqrt(math.log(1.0 + cfg.itl_cv**2))
            mu = math.log(itl) - sigma * sigma / 2.0
            for _ in range(seq.n_out):
                yield t
                t += rng.lognormvariate(mu, sigma)
            return
        for k in range(seq.n_out):
            yield t + k * itl

    def deliveries(self, seq: Seq, max_batch: int) -> Iterator[tuple[int, int]]:
        """Yield ``(lo, hi)`` token ranges as they fall due; blocks the calling greenlet."""
        if seq.admitted_at is None:
            seq.event.wait()
        due = list(self.schedule(seq))
        n = seq.n_out
        k = 0
        while k < n:
            now = perf_counter()
            if due[k] > now:
                sleep_until(due[k])
                now = perf_counter()
            hi = k + 1
            lim = min(n, k + max_batch)
            while hi < lim and due[hi] <= now:
                hi += 1
            if k == 0:
                seq.first_token_at = now
                if not seq.done:
                    self._prefilled(seq, first=True)
            seq.generated = hi
            yield k, hi
            k = hi


class BatchEngine(_Base):
    """Continuous batching with chunked prefill, KV capacity, preemption and prefix caching."""

    def __init__(self, cfg: Config, metrics=None) -> None:
        p = cfg.profile
        if cfg.num_gpu_blocks_override:
            capacity = cfg.num_gpu_blocks_override * cfg.block_size
        else:
            space = os.environ.get("VLLM_CPU_KVCACHE_SPACE")
            capacity = p.kv_capacity_tokens(
                cfg.tp, cfg.gpu_memory_utilization, float(space) if space else None
            )
        super().__init__(cfg, metrics, capacity // cfg.block_size)
        self.capacity = capacity
        self.profile = p
        self.budget_tokens = cfg.max_num_batched_tokens
        self.running: list[Seq] = []
        self.kv_used = 0
        self._work: list[tuple[Seq, int, bool]] = []
        self._wake = Event()
        self._greenlet = None
        self.steps = 0
        self._stats = (0, 0, 0.0)  # (running, waiting, kv usage) as of the last schedule

    # Like vLLM's SchedulerStats, the gauges are a snapshot taken when a step is scheduled:
    # a request that arrived during a step shows as waiting only if the scheduler left it there.
    @property
    def num_running(self) -> int:
        return self._stats[0]

    @property
    def num_waiting(self) -> int:
        return self._stats[1]

    def kv_usage(self) -> float:
        return self._stats[2]

    def submit(self, seq: Seq) -> None:
        """Queue the request for the step loop (or raise QueueFull)."""
        self._check_queue()
        seq.queued = True
        self.waiting.append(seq)
        if self._greenlet is None:
            self._greenlet = gevent.spawn(self._loop)
        self._wake.set()

    def finish(self, seq: Seq) -> None:
        """Remove a request (done or client gone) and free its KV."""
        if seq.queued:
            seq.queued = False
            try:
                self.waiting.remove(seq)
            except ValueError:
                pass
        if seq in self.running:
            self.running.remove(seq)
            self.kv_used -= seq.kv
            seq.kv = 0
        self._release(seq)
        if not seq.done:
            seq.aborted = True
            seq.done = True

    # -- scheduling (no clock) --
    def _trim_cache(self) -> None:
        """Free cached blocks give way to the KV the running requests hold."""
        if self.cache is not None:
            self.cache.trim(-(-self.kv_used // self.cfg.block_size))

    def _preempt(self, victim: Seq) -> None:
        self.running.remove(victim)
        self.kv_used -= victim.kv
        self._release(victim)
        victim.kv = 0
        victim.computed = 0
        victim.queued = True
        self.waiting.appendleft(victim)
        if self.metrics is not None:
            self.metrics.preemptions.inc()

    def schedule_step(self, now: float) -> float:
        """Pick this step's work; return its duration in seconds (0 = nothing to do)."""
        budget = self.budget_tokens
        work: list[tuple[Seq, int, bool]] = []
        i = 0
        while i < len(self.running):
            s = self.running[i]
            prefill = s.computed < s.prefill_target
            need = min(s.prefill_target - s.computed, budget) if prefill else 1
            if need <= 0 or budget <= 0:
                i += 1
                continue
            while self.kv_used + need > self.capacity and self.running:
                victim = self.running[-1]
                self._preempt(victim)
                if victim is s:
                    break
            if s.queued:  # preempted itself: nothing after it runs either
                break
            self.kv_used += need
            s.kv += need
            budget -= need
            work.append((s, need, prefill))
            i += 1
        while self.waiting and len(self.running) < self.max_num_seqs and budget > 0:
            s = self.waiting[0]
            target = s.prompt_tokens + s.generated
            cached = self._hit(s, target)
            need = min(target - cached, budget)
            if self.kv_used + cached + need > self.capacity:
                break
            self.waiting.popleft()
            s.queued = False
            first = s.admitted_at is None
            if first:
                s.admitted_at = now
            self._take_hit(s, cached, first)
            s.prefill_target = target
            s.computed = cached
            s.kv = cached + need
            self.kv_used += cached + need
            budget -= need
            self.running.append(s)
            work.append((s, need, True))
        self._work = work
        self._trim_cache()
        kv = min(1.0, self.kv_used / self.capacity) if self.capacity else 0.0
        self._stats = (len(self.running), len(self.waiting), kv)
        if not work:
            return 0.0
        prefill_tokens = sum(n for _, n, pf in work if pf)
        decode = sum(1 for _, _, pf in work if not pf)
        context = sum(s.kv for s, _, _ in work)
        return (
            self.profile.step_time(prefill_tokens, decode, context, self.cfg.tp)
            * self.cfg.time_scale
        )

    def complete_step(self, now: float) -> None:
        """The step's tokens now exist: advance sequences, retire finished ones, wake writers."""
        self.steps += 1
        for s, n, prefill in self._work:
            if s.done or s.queued:
                continue
            if prefill:
                s.computed += n
                if s.computed < s.prefill_target:
                    continue
                self._prefilled(s, first=s.generated == 0)
            else:
                s.computed += 1
            s.generated += 1
            if s.first_token_at is None:
                s.first_token_at = now
            if s.generated >= s.n_out:
                s.done = True
                self.running.remove(s)
                self.kv_used -= s.kv
                s.kv = 0
                self._release(s)
            s.event.set()
        self._work = []

    def _loop(self) -> None:
        t = perf_counter()
        while True:
            if not self.running and not self.waiting:
                self._stats = (0, 0, 0.0)
                self._wake.clear()
                self._wake.wait()
                t = perf_counter()
            dt = self.schedule_step(t)
            if dt <= 0:
                # nothing fits (e.g. a prompt larger than the whole KV cache): wait for a change
                self._wake.clear()
                self._wake.wait(timeout=0.01)
                t = perf_counter()
                continue
            end = t + dt
            sleep_until(end)
            self.complete_step(end)
            now = perf_counter()
            t = end if now - end < 0.002 else now

    def deliveries(self, seq: Seq, max_batch: int) -> Iterator[tuple[int, int]]:
        """Yield ``(lo, hi)`` ranges of tokens the engine has produced; blocks until then."""
        sent = 0
        while True:
            seq.event.clear()
            if seq.generated > sent:
                hi = min(seq.generated, sent + max_batch)
                yield sent, hi
                sent = hi
                continue
            if sent >= seq.n_out or (seq.done and seq.generated <= sent):
                return
            seq.event.wait()


def make_engine(cfg: Config, metrics=None):
    """The engine for the configured profile."""
    if cfg.profile.kind == "constant":
        return ConstantEngine(cfg, metrics)
    return BatchEngine(cfg, metrics)
