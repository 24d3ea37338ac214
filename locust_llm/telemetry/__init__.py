"""GPU telemetry: an NVML sampler process (`sampler`) and pure aggregation (`aggregate`).

Nothing here imports Locust or gevent: the sampler runs as its own process (under gevent's
monkey-patching a thread would be one more greenlet, starved whenever users are busy), and
the same module runs on a GPU host that has no Locust installed.
"""
