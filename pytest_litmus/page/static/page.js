// The station page: state and session events by server-sent events; every text shown goes in by textContent.
"use strict";
(() => {
  const $ = (id) => document.getElementById(id);
  const el = (tag, text, cls) => {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (cls) node.className = cls;
    return node;
  };
  const num = (v) => (typeof v === "number" ? String(Number(v.toPrecision(6))) : v === null || v === undefined ? "" : String(v));
  const short = (nodeid) => String(nodeid || "").split("::").slice(1).join("::") || String(nodeid || "");
  const LABEL = { passed: "PASS", failed: "FAIL", errored: "ERROR", terminated: "STOPPED", running: "RUNNING", idle: "READY" };

  let state = {};
  let view = null;

  function reset(id) {
    view = { id, ended: null, started: false, done: 0, failures: [], prompts: new Map(), dut: null };
    $("measurements").tBodies[0].replaceChildren();
    $("failures").replaceChildren();
    $("running-test").textContent = "";
    $("session-id").textContent = id ? `session ${id.slice(0, 8)}` : "";
    renderSession();
  }

  function limits(m) {
    const lo = m.low, hi = m.high;
    if (lo !== null && lo !== undefined && hi !== null && hi !== undefined) return `${num(lo)} … ${num(hi)}`;
    if (lo !== null && lo !== undefined) return `≥ ${num(lo)}`;
    if (hi !== null && hi !== undefined) return `≤ ${num(hi)}`;
    return "";
  }

  function apply(events) {
    const rows = document.createDocumentFragment();
    for (const e of events) {
      switch (e.type) {
        case "SessionStarted": view.started = true; view.dut = e.dut || null; break;
        case "UnitStarted": if (!view.dut) view.dut = e.dut || null; break;
        case "TestStarted": $("running-test").textContent = `running ${short(e.nodeid)}`; break;
        case "TestOutcome":
          if (e.outcome !== "rerun") view.done += 1;
          if (e.outcome === "xfailed" || e.outcome === "rerun") {  // its failed measurements were expected, or superseded
            $("measurements").tBodies[0].append(rows);
            for (const tr of $("measurements").querySelectorAll("tbody tr.failed")) {
              if (tr.dataset.nodeid === String(e.nodeid)) { tr.className = e.outcome; tr.lastChild.textContent = e.outcome; }
            }
          }
          if (e.outcome === "failed" || e.outcome === "error") {
            const text = `${short(e.nodeid)}: ${e.outcome}${e.message ? " — " + String(e.message).split("\n")[0] : ""}`;
            $("failures").append(el("li", text));
          }
          break;
        case "Measurement": {
          const tr = el("tr", null, e.outcome === "failed" ? "failed" : "passed");
          tr.dataset.name = String(e.name);
          tr.dataset.nodeid = String(e.nodeid);
          tr.append(el("td", short(e.nodeid)), el("td", e.name), el("td", `${num(e.value)}${e.units ? " " + e.units : ""}`),
            el("td", limits(e)), el("td", e.outcome === "failed" ? "FAIL" : "pass"));
          rows.append(tr);
          break;
        }
        case "PromptAsked": view.prompts.set(e.prompt, e); break;
        case "PromptAnswered": case "PromptExpired": view.prompts.delete(e.prompt); break;
        case "SessionEnded": view.ended = String(e.outcome); $("running-test").textContent = ""; break;
      }
    }
    $("measurements").tBodies[0].append(rows);
    renderSession();
  }

  function outcome() {
    if (!view || !view.started) return "idle";
    if (view.ended) return view.ended;
    return "running";
  }

  function renderSession() {
    const o = outcome();
    const banner = $("banner");
    banner.dataset.outcome = o;
    banner.textContent = LABEL[o] || o.toUpperCase();
    $("dut").textContent = view && view.dut ? `unit ${view.dut}` : "no unit";
    const expected = state.expected_tests;
    const done = view ? view.done : 0;
    const ended = o !== "running";
    const share = ended && view && view.started ? 1 : expected ? Math.min(done / expected, 0.99) : 0;
    $("progress-bar").style.width = `${Math.round(share * 100)}%`;
    $("progress-text").textContent = view && view.started ? `${done}${expected && !ended ? " of ~" + expected : ""} tests` : "";
    renderPrompt();
  }

  let shownPrompt = null;
  function renderPrompt() {
    const dialog = $("prompt");
    const open = view && !view.ended ? [...view.prompts.values()].find((p) => p.via === "page") : undefined;
    if (!open) {
      if (dialog.open) dialog.close();
      shownPrompt = null;
      return;
    }
    if (shownPrompt === open.prompt) return;
    shownPrompt = open.prompt;
    $("prompt-text").textContent = open.text;
    const choices = $("prompt-choices");
    choices.replaceChildren();
    const free = !Array.isArray(open.choices) || open.choices.length === 0;
    $("prompt-answer").hidden = !free;
    $("prompt-ok").hidden = !free;
    $("prompt-answer").value = "";
    if (!free) {
      for (const choice of open.choices) {
        const button = el("button", choice);
        button.type = "button";
        button.addEventListener("click", () => answer(open.prompt, String(choice)));
        choices.append(button);
      }
    }
    if (!dialog.open) dialog.showModal();
    (free ? $("prompt-answer") : choices.firstChild).focus();
  }

  async function post(name, body) {
    const response = await fetch(`/api/${name}`, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
    let data = {};
    try { data = await response.json(); } catch (err) { data = { error: response.statusText }; }
    if (!response.ok) throw new Error(data.error || response.statusText);
    return data;
  }

  async function answer(prompt, text) {
    try { await post("answer", { prompt, answer: text }); } catch (err) { $("message").textContent = err.message; }
  }

  function renderState() {
    $("station").textContent = state.station || "";
    $("description").textContent = state.description || "";
    document.title = `litmus ${state.station || ""}`;
    const list = $("instruments");
    list.replaceChildren(...(state.instruments || []).map((i) => {
      const holder = i.holders && i.holders[0];
      const text = holder ? `${i.role}: held by ${holder.user}@${holder.host} pid ${holder.pid}${holder.station ? " (" + holder.station + ")" : ""}` : `${i.role}: free`;
      const li = el("li", text, holder ? "held" : "free");
      li.title = i.resource;
      return li;
    }));
    const run = state.run;
    const running = !!(run && run.running);
    $("start").disabled = running;
    $("serial").disabled = running;
    $("stop").disabled = !running || run.stopping;
    const output = $("output");
    const failedRun = run && !run.running && run.returncode !== 0 && run.returncode !== 1 && run.output && run.output.length;
    output.hidden = !failedRun;
    output.textContent = failedRun ? `exit code ${run.returncode}\n${run.output.join("\n")}` : "";
    const y = state.yield || {};
    $("yield").textContent = y.units ? `${y.passed} of ${y.units} passed (${Math.round(100 * y.yield)} %)` : "no units yet";
    $("units").tBodies[0].replaceChildren(...(state.units || []).map((u) => {
      const tr = el("tr");
      tr.append(el("td", u.dut), el("td", u.outcome, u.outcome), el("td", new Date(u.start * 1000).toLocaleTimeString()));
      return tr;
    }));
    renderSession();
  }

  $("start-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const serial = $("serial").value.trim();
    $("message").textContent = "";
    if (!serial) { $("message").textContent = "scan or type a serial first"; return; }
    try {
      await post("start", { serial });
      $("serial").value = "";
    } catch (err) {
      $("message").textContent = err.message;
    }
  });
  $("stop").addEventListener("click", async () => {
    try { await post("stop", {}); } catch (err) { $("message").textContent = err.message; }
  });
  $("prompt-form").addEventListener("submit", (event) => {
    event.preventDefault();
    if (shownPrompt && !$("prompt-answer").hidden && $("prompt-answer").value.trim()) answer(shownPrompt, $("prompt-answer").value.trim());
  });
  $("prompt").addEventListener("cancel", (event) => event.preventDefault()); // Escape does not dismiss a question

  const source = new EventSource("/api/stream");
  source.addEventListener("open", () => { $("link").textContent = "live"; $("link").className = "link up"; });
  source.addEventListener("error", () => { $("link").textContent = "reconnecting…"; $("link").className = "link down"; });
  source.addEventListener("state", (m) => { state = JSON.parse(m.data); renderState(); });
  source.addEventListener("session", (m) => reset(JSON.parse(m.data).id));
  source.addEventListener("events", (m) => { if (!view) reset(null); apply(JSON.parse(m.data)); });
  reset(null);
})();
