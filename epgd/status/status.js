// The epgd status page: polls streams/status and health every few seconds and schedule.json
// less often, and redraws from them. Every text from the server goes in as a text node
// (never as HTML): event titles come from providers.
"use strict";

(function () {
  const FAST = 2000; // streams/status and health
  const SLOW = 15000; // schedule.json (also re-read after a refresh)
  const info = JSON.parse(document.getElementById("epgd-info").textContent || "{}");
  const base = (info.base_url || location.origin).replace(/\/+$/, "");
  const state = {
    streams: {}, health: null, schedule: null, scheduleAt: 0, reachable: true,
    lastRefresh: "", confirm: {}, drawn: {},
    token: new URLSearchParams(location.search).get("token") || sessionStorage.getItem("epgd-token") || "",
  };
  // Opened as /?token=…: from outside server.open_networks the page and its data need the
  // token (SPEC §15). Keep it for this tab, out of the address bar.
  if (new URLSearchParams(location.search).has("token")) {
    sessionStorage.setItem("epgd-token", state.token);
    history.replaceState(null, "", location.pathname);
  }
  const $ = (id) => document.getElementById(id);

  // -- DOM -----------------------------------------------------------------------------

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
      else node.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  // Redraw one part only when what it shows changed, so a selection or a focus survives.
  function draw(part, key, build) {
    if (state.drawn[part] === key) return;
    state.drawn[part] = key;
    $(part).replaceChildren(...[build()].flat());
  }

  // -- formatting ------------------------------------------------------------------------

  const clock = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
  const dayClock = new Intl.DateTimeFormat(undefined, { weekday: "short", hour: "2-digit", minute: "2-digit" });
  const secondsClock = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" });
  const number = new Intl.NumberFormat();

  function sameDay(a, b) {
    return a.getFullYear() === b.getFullYear() && a.getMonth() === b.getMonth() && a.getDate() === b.getDate();
  }

  function timeEl(iso, withDay) {
    const when = new Date(iso);
    const text = withDay && !sameDay(when, new Date()) ? dayClock.format(when) : clock.format(when);
    return el("time", { datetime: iso, title: when.toString() }, text);
  }

  function duration(seconds) {
    seconds = Math.max(0, Math.floor(seconds));
    const h = Math.floor(seconds / 3600), m = Math.floor((seconds % 3600) / 60), s = seconds % 60;
    if (h) return `${h} h ${String(m).padStart(2, "0")} min`;
    if (m) return `${m} min ${String(s).padStart(2, "0")} s`;
    return `${s} s`;
  }

  function ago(iso) {
    const seconds = (Date.now() - Date.parse(iso)) / 1000;
    if (seconds < 90) return "just now";
    return `${duration(seconds).replace(/ \d+ s$/, "")} ago`;
  }

  function bitrate(kbps) {
    return kbps >= 1000 ? `${(kbps / 1000).toFixed(1)} Mbit/s` : `${kbps} kbit/s`;
  }

  function bytes(n) {
    const units = ["B", "kB", "MB", "GB", "TB"];
    let i = 0;
    while (n >= 1000 && i < units.length - 1) { n /= 1000; i += 1; }
    return `${i ? n.toFixed(1) : n} ${units[i]}`;
  }

  function plural(n, one, many) {
    return `${number.format(n)} ${n === 1 ? one : many}`;
  }

  // -- data ------------------------------------------------------------------------------

  async function getJSON(path, anyStatus) {
    const headers = { Accept: "application/json" };
    if (state.token) headers.Authorization = `Bearer ${state.token}`;
    const response = await fetch(path, { cache: "no-store", headers });
    if (!response.ok && !anyStatus) throw new Error(`${path}: HTTP ${response.status}`);
    return response.json();
  }

  async function update() {
    try {
      const [streams, health] = await Promise.all([getJSON("streams/status"), getJSON("health", true)]);
      state.streams = streams;
      state.health = health;
      state.reachable = true;
      const refreshed = Object.values(health.providers || {}).map((p) => p.last_refresh).join();
      if (refreshed !== state.lastRefresh || Date.now() - state.scheduleAt > SLOW) {
        state.lastRefresh = refreshed;
        await loadSchedule();
      }
    } catch (e) {
      state.reachable = false;
    }
    render();
  }

  async function poll() {
    await update();
    setTimeout(poll, FAST);
  }

  async function loadSchedule() {
    try {
      // 503 (plain text) while the first fetch runs: keep what we had
      state.schedule = await getJSON("schedule.json");
      state.scheduleAt = Date.now();
    } catch (e) {
      state.scheduleAt = Date.now() - SLOW + FAST * 2;
    }
  }

  // -- admin actions ---------------------------------------------------------------------

  function askToken(message) {
    const dialog = $("token-dialog"), input = $("token-input");
    $("token-label").textContent = message;
    input.value = "";
    return new Promise((resolve) => {
      dialog.addEventListener("close", () => {
        resolve(dialog.returnValue === "ok" && input.value ? input.value.trim() : null);
      }, { once: true });
      dialog.showModal();
      input.focus();
    });
  }

  // POST with the admin token; asks for it when the server wants one.
  async function admin(path) {
    let message = "Admin token (server.admin_token)";
    for (let attempt = 0; attempt < 3; attempt += 1) {
      if (info.token && !state.token) {
        const token = await askToken(message);
        if (token === null) return null;
        state.token = token;
      }
      const headers = state.token ? { Authorization: `Bearer ${state.token}` } : {};
      const response = await fetch(path, { method: "POST", headers, cache: "no-store" });
      if (response.status !== 401) {
        if (state.token) sessionStorage.setItem("epgd-token", state.token);
        return response;
      }
      state.token = "";
      sessionStorage.removeItem("epgd-token");
      info.token = true;
      message = "That token was refused. Admin token:";
    }
    return null;
  }

  let noticeTimer = 0;
  function notice(text, bad) {
    const node = $("notice");
    node.textContent = text;
    node.className = bad ? "error" : "muted";
    clearTimeout(noticeTimer);
    noticeTimer = setTimeout(() => { node.textContent = ""; }, 6000);
  }

  async function stopStream(id) {
    if (!state.confirm[id] || state.confirm[id] < Date.now()) {
      state.confirm[id] = Date.now() + 4000; // a second tap within 4 s stops it
      state.drawn.streams = null;
      render();
      setTimeout(() => { state.drawn.streams = null; render(); }, 4100);
      return;
    }
    delete state.confirm[id];
    const response = await admin(`streams/stop/${encodeURIComponent(id)}`);
    if (response === null) return;
    const text = response.ok ? `Stopped ${id}.` : (await response.text()).trim();
    notice(text, !response.ok);
    await update();
  }

  async function refreshNow() {
    const button = $("refresh");
    button.disabled = true;
    try {
      const response = await admin("refresh");
      if (response === null) return;
      notice(response.ok ? "Refreshing every provider…" : (await response.text()).trim(), !response.ok);
    } catch (e) {
      notice("epgd did not answer", true);
    } finally {
      button.disabled = false;
    }
  }

  // -- the parts -------------------------------------------------------------------------

  function channelsById() {
    const map = {};
    for (const channel of (state.schedule && state.schedule.channels) || []) map[channel.id] = channel;
    return map;
  }

  function renderHeader() {
    const overall = $("overall");
    const status = state.reachable ? (state.health ? state.health.status : "loading") : "unreachable";
    overall.textContent = status === "ok" ? "running" : status;
    overall.className = `pill ${status === "ok" ? "ok" : status === "degraded" || status === "starting" ? "warn" : status === "unreachable" ? "bad" : ""}`;
    $("updated").textContent = state.reachable
      ? `updated ${secondsClock.format(new Date())}${info.version ? ` · epgd ${info.version}` : ""}`
      : "epgd does not answer; retrying";
  }

  function renderStreams() {
    const streams = state.streams || {};
    const channels = channelsById();
    const order = (id) => (channels[id] ? channels[id].number : Infinity);
    const ids = Object.keys(streams).sort((a, b) => order(a) - order(b) || (a < b ? -1 : 1));
    const viewers = ids.reduce((sum, id) => sum + (streams[id].clients || 0), 0);
    $("streams-summary").textContent = ids.length
      ? `${plural(ids.length, "stream", "streams")}, ${plural(viewers, "viewer", "viewers")}` : "";
    const confirmKey = Object.keys(state.confirm).filter((id) => state.confirm[id] > Date.now()).join();
    draw("streams", JSON.stringify([streams, confirmKey, Object.keys(channels).length]), () => {
      if (!ids.length) return el("p", { class: "empty" }, "Nothing is streaming. A player that opens a channel starts its stream.");
      return el("div", { class: "streams" }, ids.map((id) => {
        const s = streams[id], channel = channels[id];
        const confirming = state.confirm[id] > Date.now();
        return el("article", { class: "stream", "data-stream": id },
          el("div", { class: "stream-head" },
            el("strong", {}, channel ? `${channel.number} · ${channel.name}` : id),
            el("button", { type: "button", class: confirming ? "confirm" : "danger", onclick: () => stopStream(id) },
              confirming ? "Stop now?" : "Stop")),
          el("div", { class: "event", "data-field": "event" }, s.event
            || (s.slate ? `on the slate: ${s.slate.split("\n").slice(1).join(" · ")}` : "nothing playing (waiting for the next event)")),
          s.stream_url ? el("div", { class: "mono muted small", "data-field": "source" }, s.stream_url) : null,
          el("div", { class: "chips" },
            el("span", { class: "chip", "data-field": "clients" }, plural(s.clients || 0, "viewer", "viewers")),
            el("span", { class: "chip" }, bitrate(s.bitrate_kbps || 0)),
            el("span", { class: "chip", title: `${number.format(s.bytes_sent || 0)} bytes sent` }, bytes(s.bytes_sent || 0)),
            el("span", { class: "chip" }, `up ${duration(s.uptime_seconds || 0)}`),
            el("span", { class: "chip", "data-field": "switches" }, plural(s.switches || 0, "switch", "switches")),
            s.codecs ? el("span", { class: "chip", "data-field": "codecs" }, s.codecs) : null,
            s.source_kind ? el("span", { class: "chip" }, s.source_kind.toUpperCase()) : null,
            s.idle_seconds >= 10 ? el("span", { class: "chip" }, `idle ${duration(s.idle_seconds)}`) : null),
          s.error ? el("div", { class: "error", "data-field": "error" }, s.error) : null);
      }));
    });
  }

  function nowAndNext(events, now, stream) {
    let on = null, next = null;
    for (const event of events) {
      const start = Date.parse(event.start), stop = Date.parse(event.stop);
      // "live" (as of the last schedule.json) also covers the lineup's padding
      if (!on && ((start <= now && now < stop) || event.live)) on = event;
      else if (start > now) { next = event; break; }
    }
    // an event held after its stop (games overrun) is what the stream still plays
    if (!on && stream && events.length && events[0].title === stream.event) on = events[0];
    return [on, next];
  }

  function slot(label, event, now, live) {
    if (!event) return el("div", { class: "slot" }, el("span", { class: "label" }, label), el("span", { class: "muted" }, "—"));
    const start = Date.parse(event.start), stop = Date.parse(event.stop);
    const share = Math.min(100, Math.max(0, (100 * (now - start)) / Math.max(1, stop - start)));
    return el("div", { class: "slot", "data-field": label.toLowerCase() },
      el("span", { class: "label" }, label),
      el("div", {},
        el("div", { class: "title" }, event.title),
        el("div", { class: "when" }, timeEl(event.start, !live), " – ", timeEl(event.stop, !live),
          live && now >= stop ? " (running over)" : ""),
        live ? el("div", { class: "progress" }, el("span", { style: `width:${share.toFixed(1)}%` })) : null));
  }

  function renderChannels() {
    const schedule = state.schedule;
    const minute = Math.floor(Date.now() / 60000);
    const streams = state.streams || {};
    const streaming = Object.keys(streams).map((id) => `${id}:${streams[id].clients}`).join();
    $("zone").textContent = `times in ${Intl.DateTimeFormat().resolvedOptions().timeZone || "local time"}`;
    draw("lineups", JSON.stringify([schedule && schedule.generated_at, state.scheduleAt > 0, minute, streaming]), () => {
      if (!schedule) return el("p", { class: "empty" }, "No schedule yet: provider data is still loading.");
      const now = Date.now();
      const names = Object.fromEntries((info.lineups || []).map((l) => [l.id, l.name]));
      const groups = new Map();
      for (const channel of schedule.channels) {
        if (!groups.has(channel.lineup)) groups.set(channel.lineup, []);
        groups.get(channel.lineup).push(channel);
      }
      const unplaced = {};
      for (const event of schedule.unplaced || []) unplaced[event.lineup] = (unplaced[event.lineup] || 0) + 1;
      return [...groups.entries()].map(([lineup, channels]) => el("div", { class: "lineup", "data-lineup": lineup },
        el("h3", {}, names[lineup] || lineup, el("span", { class: "muted small" }, plural(channels.length, "channel", "channels")),
          unplaced[lineup] ? el("span", { class: "pill warn", title: "events that fit on none of this lineup's channels" },
            `${unplaced[lineup]} unplaced`) : null),
        channels.map((channel) => {
          const stream = streams[channel.id];
          const [on, next] = nowAndNext(channel.events, now, stream);
          return el("div", { class: "channel", "data-channel": channel.id },
            el("div", { class: "number" }, channel.number),
            el("div", { class: "name" }, el("strong", {}, channel.name),
              el("button", { type: "button", class: "watch", "data-watch": channel.id, "data-name": channel.name,
                title: "Play this channel here (HLS)" }, "Watch"),
              on ? el("span", { class: "pill live" }, "live") : null,
              stream ? el("span", { class: "pill ok", title: "streaming now" }, `▶ ${plural(stream.clients || 0, "viewer", "viewers")}`) : null),
            slot("Now", on, now, true),
            slot("Next", next, now, false));
        })));
    });
  }

  function renderProviders() {
    const providers = (state.health && state.health.providers) || {};
    const minute = Math.floor(Date.now() / 60000);
    draw("providers", JSON.stringify([providers, minute]), () => {
      const names = Object.keys(providers);
      if (!names.length) return el("p", { class: "empty" }, state.health ? "No provider is configured." : "Loading…");
      return names.map((name) => {
        const p = providers[name];
        const status = p.error ? ["error", "bad"] : p.loaded ? ["ok", "ok"] : ["loading", "warn"];
        const limit = p.max_streams ? `${p.connections || 0} of ${p.max_streams} connections` : `${plural(p.connections || 0, "connection", "connections")} (no limit)`;
        return el("div", { class: "provider", "data-provider": name },
          el("div", { class: "provider-head" }, el("strong", {}, name), el("span", { class: `pill ${status[1]}` }, status[0]),
            el("span", { class: "muted small", "data-field": "connections" }, limit)),
          el("div", { class: "small" },
            p.last_refresh ? ["refreshed ", timeEl(p.last_refresh, true), ` (${ago(p.last_refresh)})`] : "not fetched yet",
            ` · ${plural(p.channels || 0, "channel", "channels")} · ${plural(p.programmes || 0, "programme", "programmes")}`,
            p.programmes_skipped ? ` · ${number.format(p.programmes_skipped)} skipped` : ""),
          p.error ? el("div", { class: "error", "data-field": "error" }, p.error) : null);
      });
    });
  }

  function renderConnect() {
    const host = base.replace(/^[a-z]+:\/\//i, "");
    $("link-m3u").textContent = `${base}/playlist.m3u`;
    $("link-epg").textContent = `${base}/epg.xml`;
    $("link-metrics").textContent = `${base}/metrics`;
    if (info.token) $("metrics-note").textContent = "Prometheus; needs the admin token (Authorization: Bearer …)";
    if (info.hdhr === false) {
      $("hdhr-address").textContent = "off";
      $("hdhr-note").textContent = "HDHomeRun emulation is disabled ([hdhr] enabled = false).";
    } else {
      $("hdhr-address").textContent = host;
      $("hdhr-note").textContent = `Plex: Live TV & DVR, enter ${host} by hand. Jellyfin, Emby, Channels DVR: add an HDHomeRun tuner at ${base}.`;
    }
  }

  function render() {
    renderHeader();
    renderStreams();
    renderChannels();
    renderProviders();
  }

  $("refresh").addEventListener("click", refreshNow);
  renderConnect();
  poll();
})();
