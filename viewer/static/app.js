"use strict";
// swarmgym view: one page, hash routes (#/ table, #/t/ROW conversation, #/tree/ROW, #/tok/ROW, #/plots).
// Every string from the run is put in the DOM as text (createTextNode / textContent), never as HTML.
(function () {
  const PAGE = 50;
  const embedded = document.getElementById("swarmgym-data");
  const STATIC = embedded ? JSON.parse(embedded.textContent) : null;
  const app = document.getElementById("app");
  const statusEl = document.getElementById("status");
  let liveTimer = null;

  function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "text") e.textContent = String(v);
      else e.setAttribute(k, String(v));
    }
    for (const k of kids.flat()) {
      if (k === null || k === undefined) continue;
      e.appendChild(typeof k === "object" ? k : document.createTextNode(String(k)));
    }
    return e;
  }
  const fmt = (v) => (v === null || v === undefined ? "-" : typeof v === "number" ? (Number.isInteger(v) ? String(v) : v.toFixed(3)) : String(v));
  const link = (href, text, cls) => el("a", { href, class: cls }, text);

  // ------------------------------------------------------------------ data sources
  async function get(url) {
    const r = await fetch(url);
    const body = await r.json();
    if (!r.ok) throw new Error(body.error || r.statusText);
    return body;
  }
  function num(v) { return v === "" || v === null || v === undefined ? null : Number(v); }
  function staticEpisodes(p) {
    // the same filters as the server's RunIndex.query, over the embedded rows
    let rows = STATIC.rows.filter((r) => {
      if (p.top !== "0" && r.parent_id !== null) return false;
      if (p.env && r.env !== p.env) return false;
      if (p.role && r.role !== p.role) return false;
      if (p.status && r.status !== p.status) return false;
      if (p.judge && r.judge !== p.judge) return false;
      if (num(p.rmin) !== null && !(r.reward >= num(p.rmin))) return false;
      if (num(p.rmax) !== null && !(r.reward <= num(p.rmax))) return false;
      if (p.facet) {
        const f = r.facets[p.facet];
        if (f === undefined) return false;
        if (num(p.fmin) !== null && !(f >= num(p.fmin))) return false;
        if (num(p.fmax) !== null && !(f <= num(p.fmax))) return false;
      }
      if (p.task && !(r.task_id === p.task || r.task_id.includes(p.task))) return false;
      if (p.error && !(STATIC.trajs[r.row].error || "").toLowerCase().includes(p.error.toLowerCase())) return false;
      return true;
    });
    const key = p.sort || "row";
    if (key !== "row") rows = rows.slice().sort((a, b) => ((a[key] ?? -Infinity) > (b[key] ?? -Infinity) ? 1 : (a[key] ?? -Infinity) < (b[key] ?? -Infinity) ? -1 : 0));
    if (p.desc === "1") rows = rows.slice().reverse();
    const off = Number(p.offset || 0);
    return { total: rows.length, offset: off, rows: rows.slice(off, off + PAGE) };
  }
  const api = STATIC ? {
    meta: async () => STATIC.meta,
    episodes: async (p) => staticEpisodes(p),
    traj: async (row) => STATIC.trajs[row],
    tree: async (row) => STATIC.trees[row],
    tokens: async (row) => STATIC.tokens[row],
    plots: async () => STATIC.plots,
  } : {
    meta: () => get("api/meta"),
    episodes: (p) => get("api/episodes?" + new URLSearchParams(p)),
    traj: (row) => get("api/traj/" + row),
    tree: (row) => get("api/tree/" + row),
    tokens: (row) => get("api/tokens/" + row),
    plots: () => get("api/plots"),
  };

  // ------------------------------------------------------------------ episode table
  const FIELDS = ["env", "task", "status", "role", "rmin", "rmax", "facet", "fmin", "fmax", "error", "judge", "sort", "desc", "top", "offset"];
  function params() {
    const q = new URLSearchParams(location.hash.split("?")[1] || "");
    const p = {};
    for (const f of FIELDS) p[f] = q.get(f) || "";
    if (!q.has("top")) p.top = "1";
    return p;
  }
  function go(p) { location.hash = "#/?" + new URLSearchParams(p); }

  function select(name, options, value) {
    const s = el("select", { name });
    s.appendChild(el("option", { value: "" }, "any " + name));
    for (const o of options) s.appendChild(el("option", { value: o, selected: o === value ? "selected" : null }, o));
    return s;
  }
  async function table() {
    const p = params();
    const meta = await api.meta();
    const form = el("form", { id: "filters" },
      select("env", meta.envs, p.env), " ",
      el("input", { name: "task", placeholder: "task id", value: p.task }), " ",
      select("status", meta.statuses, p.status), " ", select("role", meta.roles, p.role), " ",
      select("judge", ["ok", "error", "timeout"], p.judge), " reward ",
      el("input", { name: "rmin", size: 4, placeholder: "min", value: p.rmin }), "–",
      el("input", { name: "rmax", size: 4, placeholder: "max", value: p.rmax }), " ",
      select("facet", meta.facets, p.facet),
      el("input", { name: "fmin", size: 4, placeholder: "min", value: p.fmin }), "–",
      el("input", { name: "fmax", size: 4, placeholder: "max", value: p.fmax }), " ",
      el("input", { name: "error", placeholder: "error text", value: p.error }), " sort ",
      select("sort", meta.sort_keys, p.sort), " ",
      el("label", {}, el("input", { type: "checkbox", name: "desc", checked: p.desc === "1" ? "checked" : null }), "desc"), " ",
      el("label", {}, el("input", { type: "checkbox", name: "top", checked: p.top !== "0" ? "checked" : null }), "top-level only"), " ",
      el("button", { type: "submit", id: "apply" }, "apply"), " ",
      STATIC ? null : el("label", {}, el("input", { type: "checkbox", id: "live", checked: liveTimer ? "checked" : null }), "live"));
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      const q = {};
      for (const f of FIELDS) { const i = form.elements[f]; if (i) q[f] = i.type === "checkbox" ? (i.checked ? "1" : "0") : i.value; }
      q.offset = "0";
      go(q);
    });
    const res = await api.episodes(p);
    const head = el("tr", {}, ["#", "id", "task", "sample", "env", "role", "status", "reward", "judge", "turns", "tools", "wall s", "children", "tokens", "error"].map((h) => el("th", {}, h)));
    const body = el("tbody", {});
    for (const r of res.rows) {
      body.appendChild(el("tr", { class: "ep status-" + r.status },
        el("td", {}, String(r.row)), el("td", {}, link("#/t/" + r.row, r.id)), el("td", {}, r.task_id),
        el("td", {}, String(r.sample)), el("td", {}, r.env), el("td", {}, r.role), el("td", {}, r.status),
        el("td", { class: "num" }, fmt(r.reward)), el("td", {}, fmt(r.judge)), el("td", { class: "num" }, fmt(r.turns)),
        el("td", { class: "num" }, fmt(r.tool_calls)), el("td", { class: "num" }, fmt(r.wall_s)),
        el("td", {}, r.children ? link("#/tree/" + r.row, r.children + " ↳") : "0"),
        el("td", {}, r.tokens ? link("#/tok/" + r.row, "tokens") : ""), el("td", { class: "err" }, r.error)));
    }
    const off = Number(p.offset || 0);
    const pager = el("div", { class: "pager" },
      off > 0 ? link("#/?" + new URLSearchParams({ ...p, offset: Math.max(0, off - PAGE) }), "← prev", "prev") : "",
      el("span", { id: "count" }, ` ${res.total} episodes (showing ${res.total ? off + 1 : 0}–${off + res.rows.length}) `),
      off + PAGE < res.total ? link("#/?" + new URLSearchParams({ ...p, offset: off + PAGE }), "next →", "next") : "");
    app.replaceChildren(form, pager, el("table", { id: "episodes" }, el("thead", {}, head), body));
    const live = document.getElementById("live");
    if (live) live.addEventListener("change", () => { setLive(live.checked); });
  }
  function setLive(on) {
    if (liveTimer) clearInterval(liveTimer);
    liveTimer = on ? setInterval(() => { if (location.hash === "" || location.hash.startsWith("#/?") || location.hash === "#/") route(); }, 2000) : null;
  }

  // ------------------------------------------------------------------ one trajectory
  function content(c) {
    if (c === null || c === undefined) return "";
    if (typeof c === "string") return c;
    return c.map((part) => (part.type === "text" ? part.text : "[" + part.type + ": " + JSON.stringify(part.image_url || part) + "]")).join("\n");
  }
  function kv(title, obj) {
    const rows = Object.entries(obj || {});
    if (!rows.length) return null;
    return el("table", { class: "kv" }, el("caption", {}, title), rows.map(([k, v]) => el("tr", {}, el("th", {}, k), el("td", {}, typeof v === "object" ? JSON.stringify(v) : fmt(v)))));
  }
  async function traj(row) {
    const t = await api.traj(row);
    const manifest = (await api.meta()).manifest || {};
    const limits = Object.fromEntries(Object.entries((manifest.args || {}).limits || {}).filter(([, v]) => v !== null));
    const calls = {};
    const msgs = (t.messages || []).map((m, i) => {
      const box = el("div", { class: "msg role-" + m.role },
        el("div", { class: "who" }, m.role + (m.name ? " (" + m.name + ")" : "") + (m.tool_call_id ? " ← " + (calls[m.tool_call_id] || m.tool_call_id) : "")));
      if (m.reasoning_content) box.appendChild(el("pre", { class: "reasoning" }, m.reasoning_content));
      box.appendChild(el("pre", { class: "content" }, content(m.content)));
      for (const c of m.tool_calls || []) {
        calls[c.id] = c.name;
        box.appendChild(el("div", { class: "toolcall" }, "→ ", el("b", {}, c.name), el("pre", {}, typeof c.arguments === "string" ? c.arguments : JSON.stringify(c.arguments, null, 1))));
      }
      box.setAttribute("data-index", i);
      return box;
    });
    const j = t.judge || null;
    const kids = t.children || [];
    const head = el("div", { class: "head" },
      el("h2", {}, t.id),
      el("div", {}, `task ${t.task_id} · sample ${t.sample_index} · env ${t.env_id} · role ${t.role} · status ${t.status} · reward ${fmt(t.reward)}` + (t.trainable ? "" : " · not trainable")),
      t.parent_id ? el("div", {}, "parent: ", t._parent_row !== null && t._parent_row !== undefined ? link("#/t/" + t._parent_row, t.parent_id) : t.parent_id) : null,
      kids.length ? el("div", {}, link("#/tree/" + row, "tree of " + kids.length + " children")) : null,
      (t.completions || []).some((c) => c.completion_ids) ? el("div", {}, link("#/tok/" + row, "token view")) : null,
      t.error ? el("pre", { class: "err" }, t.error) : null);
    const side = el("div", { class: "side" },
      j ? kv("judge: " + j.outcome + " reward " + fmt(j.reward), j.facets) : null,
      j && j.outcome !== "ok" ? el("pre", { class: "err" }, JSON.stringify(j.info)) : null,
      kv("metrics (timings, counts)", t.metrics),
      kv("run limits (manifest)", limits),
      kv("tools", Object.fromEntries((t.tools || []).map((x) => [x.name, x.description]))),
      kv("info", Object.fromEntries(Object.entries(t.info || {}).map(([k, v]) => [k, JSON.stringify(v).slice(0, 400)]))));
    app.replaceChildren(head, el("div", { class: "cols" }, el("div", { id: "conversation" }, msgs), side));
  }

  // ------------------------------------------------------------------ tree
  async function tree(row) {
    const t = await api.tree(row);
    const by = {};
    for (const n of t.nodes) by[n.row] = n;
    function node(r) {
      const n = by[r];
      const li = el("li", { class: "node" + (n.critical ? " crit" : ""), "data-row": r },
        link("#/t/" + r, n.role + " · " + n.id), ` ${n.status} · reward ${fmt(n.reward)} · steps ${fmt(n.length)} · wall ${fmt(n.wall_s)} s`);
      if (n.kids.length) li.appendChild(el("ul", {}, n.kids.map(node)));
      return li;
    }
    app.replaceChildren(el("h2", {}, "episode tree"),
      el("p", {}, `${t.nodes.length} trajectories; critical path (bold) of ${t.critical_path.length} nodes` + (t.truncated ? " (tree cut at 2000 nodes)" : "")),
      el("ul", { id: "tree" }, node(t.root)));
  }

  // ------------------------------------------------------------------ tokens
  function heat(lp) {
    if (lp === null || lp === undefined) return "";
    const p = Math.exp(lp); // 1 → white, 0 → red
    const g = Math.round(255 * p);
    return `background: rgb(255,${g},${g})`;
  }
  async function tokens(row) {
    const v = await api.tokens(row);
    const strip = el("div", { id: "tokstrip" }, v.tokens.map(([id, text, mask, lp, ver, turn]) =>
      el("span", { class: "tok" + (mask ? " loss" : ""), style: heat(lp), title: `id ${id} · mask ${mask} · logprob ${lp === null ? "-" : lp.toFixed(4)} · version ${ver} · turn ${turn}` },
        text === null ? String(id) + " " : text)));
    const rows = v.tokens.slice(0, 3000).map(([id, text, mask, lp, ver, turn], i) =>
      el("tr", { class: mask ? "loss" : "" }, el("td", {}, String(i)), el("td", {}, String(id)), el("td", {}, el("code", {}, text === null ? "" : JSON.stringify(text))),
        el("td", {}, String(mask)), el("td", { style: heat(lp) }, lp === null ? "-" : lp.toFixed(4)), el("td", {}, String(ver)), el("td", {}, String(turn))));
    app.replaceChildren(el("h2", {}, "tokens of ", link("#/t/" + row, "row " + row)),
      el("p", {}, `${v.total} tokens (${v.shown} shown); ` + (v.decoded ? "decoded with the given tokenizer" : "ids only (pass --tokenizer to decode)") +
        "; sampled tokens (loss mask 1) underlined, colour = sampler probability"),
      kv("turns", Object.fromEntries(v.turns.map((t) => ["turn " + t.turn, t.note || `tokens ${t.start}–${t.end}, version ${t.version}, exact ${t.exact}`]))),
      strip,
      el("table", { id: "toktable" }, el("tr", {}, ["#", "id", "text", "mask", "logprob", "version", "turn"].map((h) => el("th", {}, h))), rows));
  }

  // ------------------------------------------------------------------ plots
  async function plots() {
    const ps = await api.plots();
    app.replaceChildren(el("h2", {}, "plots"), el("p", { class: "note" }, ps.note || ""),
      ...ps.plots.map((p) => el("figure", {}, el("img", { src: p.src, alt: p.title }), el("figcaption", {}, p.title))));
  }

  // ------------------------------------------------------------------ router
  async function route() {
    const h = location.hash || "#/";
    try {
      const meta = await api.meta();
      statusEl.textContent = `${meta.path} · ${meta.top_level} episodes, ${meta.rows} trajectories` +
        (meta.done ? "" : " · indexing " + Math.round(100 * meta.indexed_bytes / Math.max(1, meta.size)) + "%") +
        (meta.superseded ? ` · ${meta.superseded} cancelled episodes run again by a resume left out` : "") +
        (meta.damaged ? ` · ${meta.damaged} damaged lines` : "") + (meta.error ? " · index error: " + meta.error : "") +
        (meta.note ? " · " + meta.note : "");
      let m;
      if ((m = h.match(/^#\/t\/(\d+)/))) await traj(Number(m[1]));
      else if ((m = h.match(/^#\/tree\/(\d+)/))) await tree(Number(m[1]));
      else if ((m = h.match(/^#\/tok\/(\d+)/))) await tokens(Number(m[1]));
      else if (h.startsWith("#/plots")) await plots();
      else await table();
      document.body.setAttribute("data-ready", h);
    } catch (e) {
      app.replaceChildren(el("p", { class: "err" }, "error: " + e.message));
      document.body.setAttribute("data-ready", "error");
    }
  }
  window.addEventListener("hashchange", route);
  route();
})();
