"""Settings every test process shares."""

from __future__ import annotations

import signal

# scripts/test.sh runs its lanes as background jobs of a non-interactive shell, which start
# with SIGINT ignored; a process started with SIGINT ignored keeps it ignored across exec, so
# every Locust a test starts would shrug off the Ctrl-C the interrupt tests send it. Python
# then installs no KeyboardInterrupt handler either: put it back, as an interactive run has it
# (the children a test starts get the default action again at exec).
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
