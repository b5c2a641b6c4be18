"""The one HTML page of the viewer: its script and style inlined, optionally with the run's data embedded.

The page renders everything with ``textContent``/``createElement`` (never ``innerHTML``), so whatever a model
wrote stays text. Embedded data sits in a ``<script type="application/json">`` with ``<``, ``>``, ``&`` and
the JavaScript line separators escaped, so no string in it can close the element. A Content-Security-Policy
allows only the page's own inline script (by hash), as a second wall behind the escaping.
"""

from __future__ import annotations

import base64
import hashlib
from functools import cache
from importlib import resources
from typing import Any

import orjson

__all__ = ["render_page", "json_for_script"]


@cache
def _asset(name: str) -> str:
    return resources.files(__package__).joinpath("static", name).read_text(encoding="utf-8")


def json_for_script(data: Any) -> str:
    """JSON safe to place inside a ``<script type="application/json">`` element."""
    raw = orjson.dumps(data, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS).decode()
    return (raw.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def render_page(data: Any | None = None, *, title: str = "swarmgym view") -> str:
    """The page; ``data`` None → it talks to the server's API, else it shows the embedded static data."""
    script = _asset("app.js")
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    csp = (f"default-src 'none'; script-src 'sha256-{digest}'; style-src 'unsafe-inline'; "
           "img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'")
    embedded = "" if data is None else (
        f'<script type="application/json" id="swarmgym-data">{json_for_script(data)}</script>\n')
    safe_title = title.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return (
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
        f"<meta http-equiv=\"Content-Security-Policy\" content=\"{csp}\">\n"
        f"<title>{safe_title}</title>\n<style>{_asset('app.css')}</style></head>\n"
        f"<body><header><a href=\"#/\">episodes</a> <a href=\"#/plots\">plots</a> <span id=\"status\"></span>"
        f"</header><main id=\"app\">loading…</main>\n{embedded}<script>{script}</script></body></html>\n"
    )
