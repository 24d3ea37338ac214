"""``python -m locust_llm.emulator [MODEL] [vllm serve flags] [--emu-* flags]``.

Also the ``locust-llm emulate`` subcommand and the ``locust-llm-emulator`` console script.
Prints one ready line on stdout once the socket is bound
(``locust-llm emulator: serving MODEL on http://HOST:PORT``); logs go to stderr. SIGTERM and
SIGINT stop it at once (the truth log is flushed first).
"""

from __future__ import annotations

import logging
import signal
import sys

import gevent
from gevent.event import Event


def main(argv: list[str] | None = None) -> int:
    """Run the emulator until SIGTERM/SIGINT; returns the exit status."""
    from .cli import parse_args
    from .server import serve

    cfg = parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, cfg.log_level.upper()),
        stream=sys.stderr,
        format="%(asctime)s emulator %(levelname)s %(message)s",
    )
    if cfg.ignored_flags:
        print(
            "locust-llm emulator: warning: ignoring vLLM flags it does not model: "
            + " ".join(cfg.ignored_flags),
            file=sys.stderr,
            flush=True,
        )
    stop = Event()
    gevent.signal_handler(signal.SIGTERM, stop.set)
    gevent.signal_handler(signal.SIGINT, stop.set)
    try:
        server, app = serve(cfg)
    except OSError as e:
        print(f"locust-llm emulator: cannot listen on {cfg.host}:{cfg.port}: {e}", file=sys.stderr)
        return 1
    try:
        stop.wait()
    finally:
        server.close()
        app.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
