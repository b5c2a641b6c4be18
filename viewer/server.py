"""The viewer's aiohttp server: the page and a small JSON API over a :class:`RunIndex`.

Binds 127.0.0.1 on a free port by default and opens nothing by itself. Requests whose ``Host`` is not the
address it listens on are refused (a web page elsewhere cannot reach the run through DNS rebinding).
Blocking work (sorting a million rows, drawing plots) runs in worker threads so the loop keeps serving.
"""

from __future__ import annotations

from typing import Any

import anyio
from aiohttp import web

from .index import Filters, RunIndex
from .page import render_page
from .views import Tokenizer, token_view, tree_view

__all__ = ["make_app", "start_server"]

PAGE = 50


def _json(data: Any, status: int = 200) -> web.Response:
    import orjson

    return web.Response(body=orjson.dumps(data, option=orjson.OPT_SERIALIZE_NUMPY), status=status,
                        content_type="application/json")


def make_app(index: RunIndex, *, tokenizer: Tokenizer | None = None) -> web.Application:
    """The viewer application over ``index`` (already started or built)."""
    allowed_hosts: set[str] = set()
    plots_cache: dict[Any, Any] = {}

    @web.middleware
    async def guard(request: web.Request, handler: Any) -> web.StreamResponse:
        if allowed_hosts and request.host not in allowed_hosts:
            return web.Response(status=403, text="unexpected Host header")
        try:
            resp = await handler(request)
        except (ValueError, IndexError) as e:  # bad filters, rows that do not exist: the user's input
            return _json({"error": str(e)}, status=400)
        except web.HTTPException:
            raise
        except Exception as e:  # shown on the page, never a hung request
            return _json({"error": f"{type(e).__name__}: {e}"}, status=500)
        resp.headers["X-Content-Type-Options"] = "nosniff"
        resp.headers["Referrer-Policy"] = "no-referrer"
        return resp

    app = web.Application(middlewares=[guard])
    app["allowed_hosts"] = allowed_hosts

    async def page(_: web.Request) -> web.Response:
        return web.Response(text=render_page(title=f"swarmgym view · {index.path.name}"), content_type="text/html")

    async def meta(_: web.Request) -> web.Response:
        return _json(index.meta())

    async def episodes(request: web.Request) -> web.Response:
        q = request.query
        f = Filters.from_query(q)
        offset = max(0, int(q.get("offset") or 0))
        limit = min(500, max(1, int(q.get("limit") or PAGE)))
        rows = await anyio.to_thread.run_sync(lambda: index.query(f, q.get("sort") or "row", q.get("desc") == "1"))
        page_rows = [int(r) for r in rows[offset: offset + limit]]
        return _json({"total": int(len(rows)), "offset": offset,
                      "rows": [index.summary(r) for r in page_rows], "done": index.done})

    def _row(request: web.Request) -> int:
        return int(request.match_info["row"])

    async def traj(request: web.Request) -> web.Response:
        row = _row(request)
        d = index.read(row)
        d["_row"] = row
        d["_parent_row"] = index.find(d["parent_id"]) if d.get("parent_id") else None
        return _json(d)

    async def tree(request: web.Request) -> web.Response:
        row = _row(request)
        return _json(await anyio.to_thread.run_sync(tree_view, index, row))

    async def tokens(request: web.Request) -> web.Response:
        d = index.read(_row(request))
        return _json(await anyio.to_thread.run_sync(lambda: token_view(d, tokenizer)))

    async def find(request: web.Request) -> web.Response:
        row = index.find(request.match_info["id"])
        return _json({"row": row}, status=200 if row is not None else 404)

    async def plots(_: web.Request) -> web.Response:
        key = (index.n, index.generation)
        if key not in plots_cache:
            from .plots import render_plots

            out = await anyio.to_thread.run_sync(render_plots, index)
            plots_cache.clear()
            plots_cache[key] = out
        return _json({"plots": [{"name": p["name"], "title": p["title"],
                                 "src": f"plots/{p['name']}.png?n={key[0]}"} for p in plots_cache[key]],
                      "note": "concurrency and loop lag over time are not stored in the file (see swarmgym run "
                              "--metrics-port)"})

    async def plot_png(request: web.Request) -> web.Response:
        for p in next(iter(plots_cache.values()), []):
            if p["name"] == request.match_info["name"]:
                return web.Response(body=p["png"], content_type="image/png")
        raise web.HTTPNotFound()

    app.router.add_get("/", page)
    app.router.add_get("/api/meta", meta)
    app.router.add_get("/api/episodes", episodes)
    app.router.add_get("/api/traj/{row:\\d+}", traj)
    app.router.add_get("/api/tree/{row:\\d+}", tree)
    app.router.add_get("/api/tokens/{row:\\d+}", tokens)
    app.router.add_get("/api/find/{id}", find)
    app.router.add_get("/api/plots", plots)
    app.router.add_get("/plots/{name}.png", plot_png)
    return app


async def start_server(app: web.Application, host: str = "127.0.0.1", port: int = 0) -> tuple[web.AppRunner, str]:
    """Start ``app``; returns the runner (``await runner.cleanup()`` stops it) and the page's URL."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    sock = site._server.sockets[0]  # type: ignore[union-attr]  # the only way to learn the port 0 chose
    real_port = sock.getsockname()[1]
    hosts = app["allowed_hosts"]
    hosts.update({f"{host}:{real_port}", f"localhost:{real_port}"} if host in ("127.0.0.1", "localhost")
                 else set())
    return runner, f"http://{host}:{real_port}/"

