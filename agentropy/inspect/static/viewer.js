// agentropy episode viewer: one small app, served by `agentropy view` or embedded in an export.
//
// Every recorded text reaches the page through textContent (the h() helper below); nothing
// built from data is ever parsed as HTML. Links are built from "#/" plus encodeURIComponent.
"use strict";
(function () {
  const SVGNS = "http://www.w3.org/2000/svg";
  const dataEl = document.getElementById("agentropy-data");
  const EMBEDDED = dataEl ? JSON.parse(dataEl.textContent) : null;

  // ------------------------------------------------------------------ DOM helpers
  function h(tag, attrs, ...kids) {
    const svg = tag.startsWith("svg:");
    const el = svg ? document.createElementNS(SVGNS, tag.slice(4)) : document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
      else if (k === "style") for (const [p, val] of Object.entries(v)) el.style.setProperty(p, val);
      else el.setAttribute(k, v === true ? "" : String(v));
    }
    add(el, ...kids);
    return el;
  }
  // Bidirectional overrides and isolates (U+202A-U+202E, U+2066-U+2069) would reorder the text
  // around them: every text node shows them as \uNNNN, as the terminal view does
  // (agentropy/inspect/terminal.py, _CONTROL).
  const BIDI = /[\u202a-\u202e\u2066-\u2069]/g;
  const visible = (s) => s.replace(BIDI, (c) => "\\u" + c.charCodeAt(0).toString(16).padStart(4, "0"));
  function add(el, ...kids) {
    for (const k of kids.flat(Infinity)) {
      if (k === null || k === undefined || k === false) continue;
      el.appendChild(k instanceof Node ? k : document.createTextNode(visible(String(k))));
    }
    return el;
  }
  function clear(el) { while (el.firstChild) el.removeChild(el.firstChild); return el; }
  const fmt = (x, d = 3) => (x === null || x === undefined) ? "-" : Number(x).toFixed(d);
  const sgn = (x, d = 3) => (x === null || x === undefined) ? "-" : (x > 0 ? "+" : "") + Number(x).toFixed(d);
  const link = (path, params) => "#/" + path + (qs(params) ? "?" + qs(params) : "");
  function qs(params) {
    const u = new URLSearchParams();
    for (const [k, v] of Object.entries(params || {})) if (v !== undefined && v !== null && v !== "") u.set(k, v);
    return u.toString();
  }
  const epLink = (id, turn) => link("episode/" + encodeURIComponent(id), turn === undefined ? {} : { turn });
  function outcome(won, score) {
    return h("span", { class: "badge " + (won ? "won" : "lost") }, (won ? "won " : "failed ") + fmt(score, 2));
  }

  // ------------------------------------------------------------------ data sources
  async function api(path, params) {
    const r = await fetch(path + (qs(params) ? "?" + qs(params) : ""), { headers: { Accept: "application/json" } });
    let body;
    try { body = await r.json(); } catch (e) { body = { error: r.status + " " + r.statusText }; }
    if (!r.ok) throw new Error(body.error || r.statusText);
    return body;
  }
  const serverSource = {
    meta: () => api("/api/meta"),
    episodes: (p) => api("/api/episodes", p),
    episode: (id) => api("/api/episode", { id }),
    group: (iteration, group_id) => api("/api/group", { iteration, group_id }),
    metrics: () => api("/api/metrics"),
    replay: (iteration) => api("/api/replay", { iteration }),
    config: () => api("/api/config"),
    files: () => api("/api/files"),
  };

  function matches(s, p) {
    const low = (x) => String(x || "").toLowerCase();
    if (p.env && s.env_id !== p.env && !low(s.env_id).includes(low(p.env))) return false;
    if (p.task && !low(s.task_id).includes(low(p.task)) && !low(s.task).includes(low(p.task))) return false;
    for (const k of ["task_type", "phase", "agent", "split"]) if (p[k] && s[k] !== p[k]) return false;
    for (const k of ["iteration", "policy_version", "group_id"]) {
      if (p[k] !== undefined && p[k] !== "" && s[k] !== Number(p[k])) return false;
    }
    if (p.won) { if (s.won !== ["true", "1", "yes"].includes(low(p.won))) return false; }
    if (p.episode_ids && !p.episode_ids.split(",").includes(s.episode_id)) return false;
    if (p.q) {
      const n = low(p.q);
      if (![s.episode_id, s.env_id, s.task_id, s.task, s.agent, s.failure].some((x) => low(x).includes(n))) return false;
    }
    return true;
  }
  function mentions(rec, needle) {
    needle = needle.toLowerCase();
    const texts = [rec.task, rec.initial_observation, rec.failure];
    for (const t of rec.turns) texts.push(t.observation, t.completion, t.action, t.invalid_reason);
    return texts.some((x) => String(x || "").toLowerCase().includes(needle));
  }
  function sortBy(items, key) {
    key = key || "line";
    const name = key.replace(/^-/, ""), desc = key.startsWith("-");
    const present = items.filter((s) => s[name] !== null && s[name] !== undefined);
    const missing = items.filter((s) => s[name] === null || s[name] === undefined);
    present.sort((a, b) => (a[name] < b[name] ? -1 : a[name] > b[name] ? 1 : 0) * (desc ? -1 : 1));
    return present.concat(missing);
  }
  function embeddedSource(D) {
    return {
      meta: async () => D.meta,
      episodes: async (p) => {
        let items = D.summaries.filter((s) => matches(s, p));
        if (p.text) items = items.filter((s) => mentions(D.episodes[s.episode_id], p.text));
        items = sortBy(items, p.sort);
        const offset = Math.max(0, Number(p.offset || 0)), limit = Math.min(500, Number(p.limit || 50));
        return { total: items.length, offset, limit, items: items.slice(offset, offset + limit) };
      },
      episode: async (id) => {
        if (!(id in D.episodes)) throw new Error("episode " + id + " is not in this export");
        return D.episodes[id];
      },
      group: async (iteration, gid) => {
        const g = D.groups[(iteration === undefined || iteration === null ? "" : iteration) + "|" + gid];
        if (!g) throw new Error("this group is not in this export");
        return { members: g.episode_ids.map((id) => D.episodes[id]), divergence: g.divergence };
      },
      metrics: async () => D.metrics,
      replay: async (iteration) => {
        const snaps = D.replay.snapshots, its = D.replay.iterations;
        if (!its.length) return { iterations: [], iteration: null, rows: [] };
        const it = iteration === undefined || iteration === "" ? its[its.length - 1].iteration : Number(iteration);
        return { iterations: its, iteration: String(it) in snaps ? it : null, rows: snaps[String(it)] || [] };
      },
      config: async () => ({ text: D.config }),
      files: async () => ({ files: [] }),
    };
  }
  const source = EMBEDDED ? embeddedSource(EMBEDDED) : serverSource;

  // ------------------------------------------------------------------ routing
  let META = null;
  let renderToken = 0;
  function route() {
    const raw = location.hash.replace(/^#\/?/, "");
    const q = raw.indexOf("?");
    const path = q < 0 ? raw : raw.slice(0, q);
    let parts;
    try { parts = path.split("/").map(decodeURIComponent); } catch (e) { parts = ["episodes"]; }
    const params = Object.fromEntries(new URLSearchParams(q < 0 ? "" : raw.slice(q + 1)));
    return { parts, params };
  }
  function replaceParams(path, params) { history.replaceState(null, "", link(path, params)); }

  async function render() {
    const token = ++renderToken;
    const { parts, params } = route();
    const view = parts[0] || "episodes";
    const app = clear(document.getElementById("app"));
    app.appendChild(topBar(view));
    const main = h("main", {});
    app.appendChild(main);
    if (META.export_note) main.appendChild(h("div", { class: "note", id: "export-note" }, META.export_note));
    const body = h("div", {});
    main.appendChild(body);
    try {
      if (view === "episode") await episodeView(body, parts.slice(1).join("/"), params, token);
      else if (view === "group") await groupView(body, parts[1], parts[2]);
      else if (view === "training") await trainingView(body, params);
      else if (view === "replay") await replayView(body, params);
      else if (view === "run") await runView(body);
      else await episodesView(body, params);
    } catch (e) {
      if (token === renderToken) add(body, h("p", { class: "error" }, String(e.message || e)));
    }
  }

  function topBar(view) {
    const tabs = [["episodes", "Episodes"]];
    if (META.has_metrics) tabs.push(["training", "Training"]);
    if (META.has_replay) tabs.push(["replay", "Replay buffer"]);
    tabs.push(["run", "Run"]);
    const active = view === "episode" || view === "group" ? "episodes" : view;
    return h("header", { class: "top" },
      h("span", { class: "brand" }, "agentropy"),
      h("span", { class: "run" }, META.run_name + " \u00b7 " + META.episodes + " episodes"),
      h("nav", { class: "tabs" }, tabs.map(([k, label]) =>
        h("a", { href: link(k), class: k === active ? "active" : "", id: "tab-" + k }, label))));
  }

  // ------------------------------------------------------------------ episode list
  const FILTERS = [
    ["q", "Search (id, task, agent, failure)", "text"],
    ["text", "Search in observations and outputs", "text"],
    ["env", "Environment", "env_id"],
    ["task_type", "Task type", "task_type"],
    ["won", "Outcome", "won"],
    ["phase", "Phase", "phase"],
    ["agent", "Agent", "agent"],
    ["split", "Split", "split"],
    ["iteration", "Iteration", "number"],
    ["policy_version", "Policy version", "number"],
    ["group_id", "Group", "number"],
    ["sort", "Order", "sort"],
  ];
  const SORT_LABELS = {
    "line": "recorded order", "-line": "newest first", "score": "score \u2191", "-score": "score \u2193",
    "mean_entropy": "entropy \u2191", "-mean_entropy": "entropy \u2193", "length": "turns \u2191",
    "-length": "turns \u2193", "iteration": "iteration \u2191", "-iteration": "iteration \u2193",
  };

  async function episodesView(body, params) {
    const results = h("section", { id: "results" });
    const state = Object.assign({}, params);
    let timer = null;
    const update = (k, v, debounce) => {
      if (v === "" || v === null) delete state[k]; else state[k] = v;
      delete state.offset;
      clearTimeout(timer);
      timer = setTimeout(() => { replaceParams("episodes", state); refresh(); }, debounce ? 250 : 0);
    };
    const form = h("aside", { class: "card filters", id: "filters" }, h("strong", {}, "Filters"));
    for (const [key, label, kind] of FILTERS) {
      const id = "f-" + key;
      let input;
      if (kind === "text" || kind === "number") {
        input = h("input", { id, type: kind === "number" ? "number" : "search", value: state[key] || "",
          oninput: (e) => update(key, e.target.value, true) });
      } else {
        let options;
        if (kind === "won") options = [["true", "won"], ["false", "failed"]];
        else if (kind === "sort") options = META.sort_keys.map((k) => [k, SORT_LABELS[k] || k]);
        else options = Object.entries(META.facets[kind] || {}).map(([v, n]) => [v, v + " (" + n + ")"]);
        input = h("select", { id, onchange: (e) => update(key, e.target.value, false) },
          kind === "sort" ? null : h("option", { value: "" }, "any"),
          options.map(([v, text]) => h("option", { value: v, selected: state[key] === v }, text)));
      }
      add(form, h("label", { for: id }, label), input);
    }
    add(form, h("button", { id: "f-reset", onclick: () => { location.hash = link("episodes"); } }, "Clear filters"));
    add(body, h("div", { class: "layout" }, form, h("div", { class: "card" }, results)));

    async function refresh() {
      const page = await source.episodes(Object.assign({ limit: 50 }, state));
      clear(results);
      const table = h("table", { class: "list", id: "episode-table" },
        h("thead", {}, h("tr", {}, ["episode", "iter", "group", "policy", "phase", "task", "outcome",
          "turns", "invalid", "entropy"].map((c) => h("th", {}, c)))));
      const tbody = h("tbody", {});
      for (const s of page.items) {
        add(tbody, h("tr", { class: "row", "data-id": s.episode_id, onclick: () => { location.hash = epLink(s.episode_id); } },
          h("td", { class: "mono" }, h("a", { href: epLink(s.episode_id) }, s.episode_id)),
          h("td", { class: "num" }, s.iteration ?? "-"),
          h("td", { class: "num" }, s.group_id ?? "-"),
          h("td", { class: "num" }, s.policy_version),
          h("td", {}, s.phase),
          h("td", { class: "mono", title: s.task }, s.task_id),
          h("td", {}, outcome(s.won, s.score), s.failure ? h("span", { class: "badge inv", title: s.failure }, "failure") : null),
          h("td", { class: "num" }, s.length),
          h("td", { class: "num" }, s.num_invalid),
          h("td", { class: "num" }, fmt(s.mean_entropy))));
      }
      table.appendChild(tbody);
      const last = Math.min(page.offset + page.items.length, page.total);
      const pager = h("div", { class: "pager" },
        h("button", { id: "prev", disabled: page.offset === 0,
          onclick: () => { state.offset = Math.max(0, page.offset - page.limit); replaceParams("episodes", state); refresh(); } }, "\u2190 previous"),
        h("span", { id: "count" }, page.total ? `${page.offset + 1}\u2013${last} of ${page.total} episodes` : "no episode matches"),
        h("button", { id: "next", disabled: last >= page.total,
          onclick: () => { state.offset = page.offset + page.limit; replaceParams("episodes", state); refresh(); } }, "next \u2192"));
      add(results, pager, table);
    }
    await refresh();
  }

  // ------------------------------------------------------------------ one episode
  function colourOf(mode, value, scale) {
    if (value === null || value === undefined || mode === "none" || !scale) return null;
    if (mode === "entropy") return `rgba(245, 124, 0, ${Math.min(1, value / scale) * 0.75})`;
    const a = Math.min(1, Math.abs(value) / scale) * 0.6;
    return value >= 0 ? `rgba(24, 160, 80, ${a})` : `rgba(220, 50, 20, ${a})`;
  }
  function scales(rec) {
    let ent = 0, adv = 0;
    for (const t of rec.turns) {
      for (const e of t.token_entropies || []) if (e !== null) ent = Math.max(ent, e);
      if (t.mean_entropy !== null) ent = Math.max(ent, t.mean_entropy);
      if (t.advantage !== null) adv = Math.max(adv, Math.abs(t.advantage));
    }
    return { entropy: ent, advantage: adv };
  }
  function field(label, node) { return h("div", { class: "field" }, h("div", { class: "lbl" }, label), node); }
  const pre = (text, cls) => h("pre", { class: "text " + (cls || "") }, text);

  function completionNode(t, mode, sc) {
    if (t.tokens && t.tokens.length) {
      const out = h("pre", { class: "text tokens" });
      t.tokens.forEach((tok, i) => {
        const e = t.token_entropies ? t.token_entropies[i] : null;
        const value = mode === "entropy" ? e : mode === "advantage" ? t.advantage : null;
        const c = colourOf(mode, value, mode === "entropy" ? sc.entropy : sc.advantage);
        add(out, h("span", { title: `token ${i}: entropy ${fmt(e)}`, style: c ? { "background-color": c } : null }, tok));
      });
      return out;
    }
    const value = mode === "entropy" ? t.mean_entropy : mode === "advantage" ? t.advantage : null;
    const c = colourOf(mode, value, mode === "entropy" ? sc.entropy : sc.advantage);
    return h("pre", { class: "text", style: c ? { "background-color": c } : null }, t.completion);
  }
  function turnBadges(t) {
    return h("span", { class: "badges" },
      t.action_is_valid ? h("span", { class: "badge ok" }, "valid") : h("span", { class: "badge inv", title: t.invalid_reason }, "invalid"),
      h("span", { class: "badge info" }, "reward " + fmt(t.reward)),
      t.advantage !== null ? h("span", { class: "badge info" }, "advantage " + sgn(t.advantage)) : null,
      t.mean_entropy !== null ? h("span", { class: "badge info" }, "entropy " + fmt(t.mean_entropy)) : null);
  }
  function turnPanel(t, i, mode, sc) {
    const parts = [h("div", { class: "th" }, h("b", {}, "Turn " + i), turnBadges(t))];
    parts.push(field("observation", pre(t.observation)));
    if (t.thinking) parts.push(field("thinking", pre(t.thinking, "think")));
    parts.push(field("action", h("div", {},
      h("span", { class: "action " + (t.action_is_valid ? "valid" : "invalid") }, t.action || "(empty)"),
      t.action_is_valid ? null : h("span", { class: "muted" }, "  \u2014 " + t.invalid_reason))));
    if (t.completion) parts.push(field("completion" + (t.tokens ? " (tokens coloured by " + mode + ")" : ""), completionNode(t, mode, sc)));
    if (t.prompt) parts.push(h("details", {}, h("summary", {}, "prompt (" + t.prompt.length + " characters)"), pre(t.prompt)));
    return h("section", { class: "turn", id: "turn-" + i }, parts);
  }

  async function episodeView(body, id, params, token) {
    const rec = await source.episode(id);
    if (token !== renderToken) return;
    const sc = scales(rec);
    let mode = params.colour || (sc.entropy ? "entropy" : sc.advantage ? "advantage" : "none");
    const ended = rec.terminated ? "terminated" : rec.truncated ? "truncated (turn limit)" : "unfinished";
    const kv = [
      ["environment", rec.env_id + " " + JSON.stringify(rec.env_kwargs)],
      ["task", rec.task],
      ["task id", rec.task_id],
      ["agent", rec.agent + " \u00b7 phase " + rec.phase + " \u00b7 policy version " + rec.policy_version],
      ["iteration", rec.iteration === null ? "-" : h("a", { href: link("training", { iteration: rec.iteration }) }, String(rec.iteration))],
      ["group", rec.group_id === null ? "-" : h("a", { id: "group-link", href: link("group/" + (rec.iteration ?? "-") + "/" + rec.group_id) }, "group " + rec.group_id + " (side by side)")],
      ["seed / options", String(rec.seed) + " " + JSON.stringify(rec.options)],
      ["split", rec.split || "-"],
      ["result", `${rec.turns.length} turns, ${rec.turns.filter((t) => !t.action_is_valid).length} invalid, total reward ${fmt(rec.total_reward)}, ${ended}`],
      ["packages", Object.entries(rec.package_versions).map(([k, v]) => k + " " + v).join(", ")],
    ];
    if (rec.failure) kv.push(["failure", h("span", { class: "error" }, rec.failure)]);
    const seg = h("span", { class: "seg", id: "colour-mode" });
    const legend = h("span", { class: "legend" });
    const strip = h("div", { class: "strip", id: "turn-strip" });
    const turns = h("div", { id: "turns" });
    function paint() {
      clear(seg); clear(legend); clear(strip); clear(turns);
      for (const m of ["entropy", "advantage", "none"]) {
        add(seg, h("button", { class: m === mode ? "on" : "", "data-mode": m, onclick: () => {
          mode = m; replaceParams("episode/" + encodeURIComponent(id), Object.assign({}, params, { colour: m })); paint(); } }, m));
      }
      const scale = mode === "entropy" ? sc.entropy : sc.advantage;
      if (mode !== "none") {
        const ramp = h("span", { class: "ramp" });
        ramp.style.setProperty("background", mode === "entropy"
          ? "linear-gradient(90deg, rgba(245,124,0,0), rgba(245,124,0,.75))"
          : "linear-gradient(90deg, rgba(220,50,20,.6), rgba(0,0,0,0), rgba(24,160,80,.6))");
        add(legend, mode === "entropy" ? "0" : sgn(-scale, 2), ramp,
          mode === "entropy" ? fmt(scale, 2) + " nats" : sgn(scale, 2), scale ? "" : " (no " + mode + " recorded)");
      }
      rec.turns.forEach((t, i) => {
        const v = mode === "entropy" ? t.mean_entropy : mode === "advantage" ? t.advantage : null;
        const c = colourOf(mode, v, scale);
        add(strip, h("a", { href: epLink(id, i), class: t.action_is_valid ? "" : "invalid",
          title: `turn ${i}: ${t.action} (reward ${fmt(t.reward)}, ${mode} ${fmt(v)})`,
          style: c ? { "background-color": c } : null,
          onclick: (e) => { e.preventDefault(); focusTurn(i); } }));
        turns.appendChild(turnPanel(t, i, mode, sc));
      });
    }
    function focusTurn(i) {
      const el = document.getElementById("turn-" + i);
      if (!el) return;
      for (const x of document.querySelectorAll(".turn.focus")) x.classList.remove("focus");
      el.classList.add("focus");
      el.scrollIntoView({ block: "start" });
    }
    add(body,
      h("div", { class: "card ep-head" },
        h("div", {},
          h("h2", { id: "episode-title" }, rec.episode_id),
          h("dl", { class: "kv" }, kv.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]))),
        h("div", {}, h("div", {}, outcome(rec.won, rec.score)),
          h("p", {}, h("a", { href: link("episodes"), id: "back" }, "\u2190 all episodes")))),
      h("div", { class: "card" }, sc.entropy || sc.advantage
        ? [h("span", { class: "muted" }, "colour by "), seg, " ", legend]
        : h("span", { class: "muted", id: "no-colour" }, "No entropy or advantage recorded for this episode (a scripted agent, or not trained on)."),
        strip),
      h("div", { class: "spacer" }), turns);
    paint();
    if (params.turn !== undefined) focusTurn(Number(params.turn));
  }

  // ------------------------------------------------------------------ GRPO group
  async function groupView(body, iteration, gid) {
    const it = iteration === "-" ? undefined : iteration;
    const g = await source.group(it, gid);
    const members = g.members, t0 = g.divergence;
    if (!members.length) throw new Error("no episodes in this group");
    const first = members[0];
    add(body, h("h2", { class: "sec" }, `Group ${gid} \u00b7 iteration ${iteration} \u00b7 ${members.length} members \u00b7 `,
      h("span", { class: "mono" }, first.task_id)));
    add(body, h("p", {}, first.task));
    const start = t0 === null ? 0 : t0;
    if (t0 === null) add(body, h("p", { class: "note" }, "All members played the same actions."));
    else {
      add(body, h("p", { id: "divergence" }, t0 === 0 ? "The members differ from the first turn."
        : `Same actions for turns 0\u2013${t0 - 1}: `, t0 ? h("span", { class: "mono" }, first.turns.slice(0, t0).map((t) => t.action).join(" \u2192 ")) : null));
    }
    const obs0 = new Set(members.filter((r) => start < r.turns.length).map((r) => r.turns[start].observation));
    if (obs0.size === 1) add(body, field(`observation at turn ${start} (all members)`, pre([...obs0][0])));
    const grid = h("div", { class: "group", id: "group-grid" });
    grid.style.setProperty("grid-template-columns", `repeat(${members.length}, minmax(220px, 1fr))`);
    for (const r of members) {
      const col = h("div", { class: "col" },
        h("h3", {}, h("a", { href: epLink(r.episode_id, start) }, r.episode_id)),
        h("div", {}, outcome(r.won, r.score), " ", h("span", { class: "muted" }, r.turns.length + " turns")));
      for (let t = start; t < start + 3; t++) {
        if (t >= r.turns.length) { add(col, h("p", { class: "muted" }, "(ended)")); break; }
        const turn = r.turns[t];
        add(col, h("div", { class: "th" }, h("b", {}, "Turn " + t), turnBadges(turn)));
        if (t !== start || obs0.size !== 1) add(col, field("observation", pre(turn.observation)));
        if (turn.thinking) add(col, field("thinking", pre(turn.thinking, "think")));
        add(col, field("action", h("span", { class: "action " + (turn.action_is_valid ? "valid" : "invalid") }, turn.action || "(empty)")));
      }
      grid.appendChild(col);
    }
    add(body, grid);
  }

  // ------------------------------------------------------------------ training curves
  function chart(key, rows, selected, onPick) {
    const W = 340, H = 170, L = 44, R = 10, T = 18, B = 22;
    const pts = rows.filter((r) => typeof r[key] === "number").map((r) => [r.iteration, r[key]]);
    const box = h("div", { class: "chart", "data-key": key }, h("h4", {}, key));
    if (!pts.length) return add(box, h("p", { class: "muted" }, "no values"));
    const xs = rows.map((r) => r.iteration);
    let x0 = Math.min(...xs), x1 = Math.max(...xs);
    let y0 = Math.min(...pts.map((p) => p[1])), y1 = Math.max(...pts.map((p) => p[1]));
    if (key.includes("success") && y0 >= 0 && y1 <= 1) { y0 = 0; y1 = 1; }
    if (x1 === x0) { x0 -= 1; x1 += 1; }
    if (y1 === y0) { y0 -= 0.5; y1 += 0.5; }
    const X = (x) => L + (x - x0) / (x1 - x0) * (W - L - R);
    const Y = (y) => T + (1 - (y - y0) / (y1 - y0)) * (H - T - B);
    const svg = h("svg:svg", { viewBox: `0 0 ${W} ${H}`, role: "img" });
    add(svg,
      h("svg:line", { class: "axis", x1: L, y1: H - B, x2: W - R, y2: H - B }),
      h("svg:line", { class: "axis", x1: L, y1: T, x2: L, y2: H - B }),
      h("svg:text", { class: "tick", x: L - 4, y: T + 4, "text-anchor": "end" }, +y1.toPrecision(3)),
      h("svg:text", { class: "tick", x: L - 4, y: H - B, "text-anchor": "end" }, +y0.toPrecision(3)),
      h("svg:text", { class: "tick", x: L, y: H - 6, "text-anchor": "start" }, x0),
      h("svg:text", { class: "tick", x: W - R, y: H - 6, "text-anchor": "end" }, x1),
      h("svg:polyline", { class: "line", points: pts.map(([x, y]) => X(x).toFixed(1) + "," + Y(y).toFixed(1)).join(" ") }));
    if (pts.length <= 150) for (const [x, y] of pts) add(svg, h("svg:circle", { class: "dot", cx: X(x), cy: Y(y), r: 2.3 }));
    if (selected !== null && selected !== undefined) {
      add(svg, h("svg:line", { class: "marker", x1: X(selected), x2: X(selected), y1: T, y2: H - B }));
    }
    const readout = h("svg:text", { class: "readout", x: W - R, y: 12, "text-anchor": "end" });
    const sel = pts.find((p) => p[0] === Number(selected));
    if (sel) add(readout, `iteration ${sel[0]}: ${+sel[1].toPrecision(4)}`);
    svg.appendChild(readout);
    const nearest = (ev) => {
      const r = svg.getBoundingClientRect();
      const x = (ev.clientX - r.left) / r.width * W;
      let best = pts[0];
      for (const p of pts) if (Math.abs(X(p[0]) - x) < Math.abs(X(best[0]) - x)) best = p;
      return best;
    };
    svg.addEventListener("mousemove", (ev) => { const p = nearest(ev); clear(readout).textContent = `iteration ${p[0]}: ${+p[1].toPrecision(4)}`; });
    svg.addEventListener("click", (ev) => onPick(nearest(ev)[0]));
    return add(box, svg);
  }

  async function trainingView(body, params) {
    const m = await source.metrics();
    const rows = m.rows;
    if (!rows.length) { add(body, h("p", { class: "muted" }, "metrics.jsonl has no rows yet.")); return; }
    let keys = params.keys ? params.keys.split(",").filter((k) => m.keys.includes(k)) : m.default_keys.slice();
    if (!keys.length) keys = m.keys.slice(0, 4);
    let selected = params.iteration !== undefined ? Number(params.iteration) : rows[rows.length - 1].iteration;
    const charts = h("div", { class: "charts", id: "charts" });
    const side = h("div", { class: "card", id: "iteration-panel" });
    const chooser = h("details", {}, h("summary", {}, `metrics to plot (${keys.length} of ${m.keys.length})`),
      h("div", { class: "keys" }, m.keys.map((k) => h("label", {},
        h("input", { type: "checkbox", checked: keys.includes(k), onchange: (e) => {
          keys = e.target.checked ? keys.concat([k]) : keys.filter((x) => x !== k);
          keys = m.keys.filter((x) => keys.includes(x));
          save(); drawCharts(); } }), k))));
    const save = () => replaceParams("training", { iteration: selected, keys: keys.join(",") });
    function drawCharts() { clear(charts); for (const k of keys) charts.appendChild(chart(k, rows, selected, pick)); }
    function pick(it) { selected = it; save(); drawCharts(); drawSide(); }
    async function drawSide() {
      const it = selected;
      const row = rows.find((r) => r.iteration === it) || {};
      const page = await source.episodes({ iteration: it, limit: 100 });
      if (it !== selected) return;
      clear(side);
      add(side, h("h2", { class: "sec" }, "Iteration " + it),
        h("p", {}, `${page.total} episodes, `, h("a", { href: link("episodes", { iteration: it }) }, "open in the list")));
      const t = h("table", { class: "list" }, h("tbody", {}, keys.filter((k) => k in row).map((k) =>
        h("tr", {}, h("td", { class: "mono" }, k), h("td", { class: "num" }, +row[k].toPrecision(5))))));
      add(side, t, h("h2", { class: "sec" }, "Episodes of this iteration"));
      const list = h("table", { class: "list", id: "iteration-episodes" }, h("tbody", {}, page.items.map((s) =>
        h("tr", { class: "row", onclick: () => { location.hash = epLink(s.episode_id); } },
          h("td", { class: "mono" }, h("a", { href: epLink(s.episode_id) }, s.episode_id)),
          h("td", { class: "num" }, s.group_id ?? "-"),
          h("td", { class: "mono" }, s.task_type),
          h("td", {}, outcome(s.won, s.score)),
          h("td", { class: "num", title: "mean entropy" }, fmt(s.mean_entropy))))));
      add(side, list);
      if (page.total > page.items.length) add(side, h("p", { class: "muted" }, `first ${page.items.length} shown`));
    }
    add(body, h("div", { class: "train" }, h("div", {}, h("h2", { class: "sec" }, "Training curves"),
      h("p", { class: "muted" }, "Click a chart to see the episodes of that iteration."), chooser, charts), side));
    drawCharts();
    await drawSide();
  }

  // ------------------------------------------------------------------ SPEAR replay buffer
  async function replayView(body, params) {
    const r = await source.replay(params.iteration);
    if (!r.iterations.length) { add(body, h("p", { class: "muted" }, "replay.jsonl has no rows yet.")); return; }
    const select = h("select", { id: "replay-iteration", onchange: (e) => { location.hash = link("replay", { iteration: e.target.value }); } },
      r.iterations.map((x) => h("option", { value: x.iteration, selected: x.iteration === r.iteration }, `iteration ${x.iteration} (${x.size} rows)`)));
    const rows = r.rows.slice().sort((a, b) => (b.advantage ?? -Infinity) - (a.advantage ?? -Infinity));
    const shown = rows.slice(0, 1000);
    const mean = rows.length ? rows.reduce((s, x) => s + (x.advantage || 0), 0) / rows.length : null;
    add(body, h("h2", { class: "sec" }, "Replay buffer after ", select),
      h("p", {}, `${rows.length} rows, mean advantage ${sgn(mean)}` + (shown.length < rows.length ? ` (the 1000 with the highest advantage are shown)` : "")),
      h("div", { class: "card" }, h("table", { class: "list", id: "replay-table" },
        h("thead", {}, h("tr", {}, ["episode", "turn", "advantage", "score", "step"].map((c) => h("th", {}, c)))),
        h("tbody", {}, shown.map((x) => h("tr", {},
          h("td", { class: "mono" }, x.known ? h("a", { href: epLink(x.episode_id) }, x.episode_id) : [x.episode_id, h("span", { class: "muted" }, " (not recorded here)")]),
          h("td", { class: "num" }, x.known ? h("a", { href: epLink(x.episode_id, x.turn) }, String(x.turn)) : x.turn),
          h("td", { class: "num" }, sgn(x.advantage)),
          h("td", { class: "num" }, fmt(x.score)),
          h("td", { class: "num" }, x.step ?? "-")))))));
  }

  // ------------------------------------------------------------------ run
  async function runView(body) {
    const c = await source.config();
    const f = await source.files();
    add(body, h("h2", { class: "sec" }, "Run " + META.run_name),
      h("p", {}, `${META.episodes} episodes, ${META.facets.won} won, ${META.facets.groups} groups`));
    if (f.files.length) {
      add(body, h("div", { class: "card" }, h("strong", {}, "Files"), h("ul", { id: "files" }, f.files.map((x) =>
        h("li", {}, h("a", { href: "/files/" + x.path.split("/").map(encodeURIComponent).join("/") }, x.path), h("span", { class: "muted" }, ` ${x.size} bytes`))))));
    }
    add(body, h("h2", { class: "sec" }, "Resolved config"),
      c.text === null ? h("p", { class: "muted" }, "This run has no .hydra/config.yaml (made by agentropy play?).") : pre(c.text));
  }

  // ------------------------------------------------------------------ start
  async function start() {
    try { META = await source.meta(); } catch (e) {
      add(clear(document.getElementById("app")), h("p", { class: "error" }, "Cannot load the run: " + e.message));
      return;
    }
    window.addEventListener("hashchange", render);
    await render();
    document.body.setAttribute("data-ready", "1");
  }
  start();
})();
