"""The backend and balancing-policy names, listed once for the plan, the CLIs and Locust."""

from __future__ import annotations

__all__ = ["STACK_BACKENDS", "LOCUST_BACKENDS", "LB_DIRECTIVES", "LB_METHODS", "DEFAULT_LB"]

# what a plan can deploy
STACK_BACKENDS = ("emulator", "cpu", "gpu", "external")
# what ``--llm-backend`` accepts: ``auto`` picks the emulator when there is no host; ``none``
# starts nothing
LOCUST_BACKENDS = ("auto", *STACK_BACKENDS, "none")
# nginx ``upstream`` directive per policy; the first one is the default
LB_DIRECTIVES = {
    "least_conn": "least_conn;",
    "round_robin": "",
    "hash": "hash $http_x_session_id consistent;",
    "random_two_least_conn": "random two least_conn;",
}
LB_METHODS = tuple(LB_DIRECTIVES)
DEFAULT_LB = LB_METHODS[0]
