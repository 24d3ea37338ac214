"""The ``/llm`` Flask Blueprint and the hooks into Locust's own web UI.

Locust 2.47's React UI renders an extended tab as *one table* fed from ``extended_stats`` in
``/stats/requests`` (its ``extended_tabs``/``extended_tables`` template args) — no HTML, no
charts. So the LLM tab is two layers:

* Locust's native table (exact TTFT/TPOT/ITL/E2E mean and percentiles), refreshed by Locust's
  own 2 s poll; React renders cells as text, so nothing in them can become markup;
* our dashboard page ``/llm/`` (plotly charts, server metrics, SLOs, downloads), shown inside
  the tab in an iframe by ``static/tab.js``, which the index page loads (injected into its
  HTML by an ``after_request`` hook) and which mounts the iframe below the table while the
  LLM tab is selected. ``/llm/`` also works on its own.

Every route is wrapped in ``auth_required_if_enabled``, like Locust's own.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import orjson
from flask import Blueprint, Response, render_template, request

from locust_llm.credentials import without_credentials
from locust_llm.web import prometheus
from locust_llm.web.data import LiveData
from locust_llm.web.scrape import ServerScraper

__all__ = ["TAB_KEY", "install", "make_blueprint", "tab_template_args"]

HERE = Path(__file__).resolve().parent
TAB_KEY = "llm"
POLL_MS = 2000
_TAB_SCRIPT = b'<script src="./llm/static/tab.js" defer></script>'

TABLE_STRUCTURE = [
    {"key": "name", "title": "Metric"},
    {"key": "count", "title": "# samples"},
    {"key": "mean", "title": "Mean (ms)"},
    {"key": "p50", "title": "p50 (ms)"},
    {"key": "p90", "title": "p90 (ms)"},
    {"key": "p95", "title": "p95 (ms)"},
    {"key": "p99", "title": "p99 (ms)"},
    {"key": "max", "title": "Max (ms)"},
]

_plotly_js: bytes | None = None


def plotly_js() -> bytes:
    """plotly.js from the installed plotly package (offline; never a CDN), read once."""
    global _plotly_js
    if _plotly_js is None:
        from plotly.offline import get_plotlyjs

        _plotly_js = get_plotlyjs().encode()
    return _plotly_js


def tab_template_args() -> dict[str, Any]:
    return {
        "extended_tabs": [{"title": "LLM", "key": TAB_KEY}],
        "extended_tables": [{"key": TAB_KEY, "structure": TABLE_STRUCTURE}],
        "extended_csv_files": [
            {"href": "./llm/summary.json", "title": "Download LLM summary JSON"},
            {"href": "./llm/intervals.csv", "title": "Download LLM per-second intervals CSV"},
        ],
    }


def _json(obj: Any, status: int = 200) -> Response:
    body = orjson.dumps(obj, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS)
    return Response(body, status=status, mimetype="application/json")


def _download(body: bytes | str, name: str, mimetype: str) -> Response:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    r = Response(body, mimetype=mimetype)
    r.headers["Content-Disposition"] = f"attachment; filename={name.format(stamp=stamp)}"
    return r


def make_blueprint(data: LiveData, scraper: ServerScraper | None, auth: Any) -> Blueprint:
    """The ``/llm`` routes; ``auth`` is ``web_ui.auth_required_if_enabled`` (or identity)."""
    bp = Blueprint(
        "locust_llm",
        __name__,
        url_prefix="/llm",
        static_folder=str(HERE / "static"),
        static_url_path="/static",
        template_folder=str(HERE / "templates"),
    )

    def server() -> dict[str, Any]:
        if scraper is None:
            return {"targets": [], "upstream_requests": {}}
        return scraper.snapshot(history=True)

    @bp.route("/")
    @auth
    def page() -> str:
        return render_template("llm_dashboard.html", poll_ms=POLL_MS)

    @bp.route("/static/plotly.min.js")
    @auth
    def plotly() -> Response:
        r = Response(plotly_js(), mimetype="application/javascript")
        r.headers["Cache-Control"] = "public, max-age=86400"
        return r

    @bp.route("/summary")
    @auth
    def summary() -> Response:
        return _json(data.summary())

    @bp.route("/summary.json")
    @auth
    def summary_download() -> Response:
        body = orjson.dumps(
            data.full_summary(), option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY
        )
        return _download(body, "llm_summary_{stamp}.json", "application/json")

    @bp.route("/intervals")
    @auth
    def intervals() -> Response:
        since = request.args.get("since", type=float)
        if since is None:
            return _json(data.intervals())
        return _json(data.rt.live.view().chart_rows(math.ceil(since)))

    @bp.route("/intervals.csv")
    @auth
    def intervals_csv() -> Response:
        return _download(data.intervals_csv(), "llm_intervals_{stamp}.csv", "text/csv")

    @bp.route("/slo")
    @auth
    def slo() -> Response:
        return _json(data.slo())

    @bp.route("/server")
    @auth
    def server_route() -> Response:
        return _json(server())

    @bp.route("/gpu")
    @auth
    def gpu() -> Response:
        """GPU series after ``since`` (epoch s): the page asks for what is new since its last poll."""
        return _json(data.gpu(request.args.get("since", type=float)))

    @bp.route("/live")
    @auth
    def live() -> Response:
        """Everything the dashboard draws, in one request per refresh. With ``epoch`` and
        ``seq`` from its previous answer, ``intervals`` holds only the rows from
        ``intervals_from`` on (the ones that may have changed); without, every row."""
        upd = data.intervals_update(
            request.args.get("epoch", type=int), request.args.get("seq", type=int)
        )
        return _json(
            {
                "summary": data.summary(),
                "intervals": upd["rows"],
                "intervals_from": upd["from"],
                "epoch": upd["epoch"],
                "seq": upd["seq"],
                "server": server(),
            }
        )

    @bp.route("/metrics")
    @auth
    def metrics() -> Response:
        # content_type, not mimetype: Flask appends "; charset=utf-8" to a mimetype, and
        # CONTENT_TYPE already carries it
        return Response(prometheus.render(data.prom_snapshot), content_type=prometheus.CONTENT_TYPE)

    return bp


def check_swarm_form(environment: Any) -> Response | None:
    """START pressed: check the ``--llm-*`` fields and run the pre-flight before Locust
    touches them; a problem answers ``success: false`` with its message, which the form shows
    (as it does Locust's own "Invalid user_count")."""
    from werkzeug.datastructures import ImmutableMultiDict

    from locust_llm.preflight import PreflightError, preflight
    from locust_llm.web.form import FormError, clean_form, form_fields

    def refuse(message: str) -> Response:
        host = without_credentials(environment.host)
        return _json({"success": False, "message": message, "host": host})

    try:
        cleaned = clean_form(form_fields(request.form), option_actions())
    except FormError as e:
        return refuse(str(e))
    if cleaned:
        fields = [(k, v) for k, v in request.form.items(multi=True) if k not in cleaned]
        request.form = ImmutableMultiDict([*fields, *cleaned.items()])
    opts = environment.parsed_options
    rt = environment.llm
    if opts is None or rt.options.skip_preflight:
        return None
    # what the pre-flight tests is what this run will use: the typed host, model, SLOs
    host = (request.form.get("host") or environment.host or "").replace("<", "").replace(">", "")
    saved = (environment.host, dict(vars(opts)), rt.model)
    try:
        environment.host = host or environment.host
        for k, v in cleaned.items():
            if k == "llm_model":
                opts.llm_model = v or None
        preflight(environment, rt)
    except PreflightError as e:
        rt.model = saved[2]
        return refuse(f"pre-flight failed: {e} (or start locust with --llm-skip-preflight)")
    finally:
        environment.host = saved[0]
        vars(opts).clear()
        vars(opts).update(saved[1])
    return None


_PARSER: dict[str, Any] = {}


def remember_parser(parser: Any) -> None:
    """Keep Locust's parser: the form is checked against its ``--llm-*`` actions."""
    _PARSER["parser"] = parser


def option_actions() -> list[Any]:
    parser = _PARSER.get("parser")
    return [a for a in getattr(parser, "_actions", []) if a.dest.startswith("llm_")]


def install(environment: Any, scraper: ServerScraper | None) -> LiveData:
    """Register the blueprint, the tab and the two ``after_request`` hooks on the web UI."""
    web_ui = environment.web_ui
    data = LiveData(environment)
    web_ui.app.register_blueprint(make_blueprint(data, scraper, web_ui.auth_required_if_enabled))
    web_ui.template_args.update(tab_template_args())

    @web_ui.app.before_request
    def _llm_swarm_form() -> Response | None:
        if request.method != "POST" or request.path != "/swarm":
            return None
        return check_swarm_form(environment)

    @web_ui.app.after_request
    def _llm_hooks(response: Response) -> Response:
        path = request.path
        if path == "/stats/requests" and response.status_code == 200:
            # Locust memoises this response object: rewriting its body again is idempotent
            try:
                body = orjson.loads(response.get_data())
                body["extended_stats"] = [{"key": TAB_KEY, "data": data.table_rows()}]
                response.set_data(orjson.dumps(body))
            except Exception:  # never break Locust's own UI because of the LLM tab
                pass
        elif path == "/" and response.mimetype == "text/html" and response.status_code == 200:
            html = response.get_data()
            if _TAB_SCRIPT not in html:
                response.set_data(html.replace(b"</head>", _TAB_SCRIPT + b"</head>", 1))
        return response

    return data
