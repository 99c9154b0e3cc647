"""The browser side of the review screen: the video player, keyboard shortcuts, the playhead.

`HEAD` goes into the page's `<head>` (Gradio's `launch(head=...)`). The player: whenever the
server's slot (`views.player_html`) changes, the clip's `<video>` is put into it, and once it can
play, the next clip's `<video>` starts loading in a hidden pool (so the two do not compete). That
element itself moves into the next slot, so the next clip plays from its buffer at once: as soon as
the server's answer to a key arrives (the fetch wrapper reads it), before Gradio redraws the rest of
the screen. A screen whose timeline was not measured yet shows a placeholder
(`#dv-timeline-pending`): the script presses the hidden `#dv-timeline-fetch` button, which answers
with the timeline once it is measured. Keys act unless the
cursor is in a text field (Escape leaves it): a accept, r reject, 1-5 toggle a reject
reason, s skip, u undo, space play/pause, j/l back/forward 5 s. A click on the timeline seeks.
The heartbeat: while a clip's slot is on the page and the tab is visible, the hidden
`#dv-heartbeat` button is pressed every `data-heartbeat-ms` (and at once when the tab becomes
visible again), which renews the clip's lease on the server and shows the banner if it was lost.
The connection banner (`#dv-conn`, fixed at the top): every call to the app's API goes through
`fetch`, which the script wraps; a call that cannot reach the server says "connection lost"
(`data-kind="connection"`) until one gets through again, and a 401/403 (the login is gone: the
server restarted, or the user logged out) says so with a button that reloads the page
(`data-kind="session"`): after logging in again the annotator is back on the same clip, with
the same undo history (both are in the catalog).
"""

from __future__ import annotations

SHORTCUTS = {  # key -> what it does (the README and the screen's help line list these)
    "a": "accept",
    "r": "reject (with the ticked reasons)",
    "1-5": "toggle a reject reason",
    "s": "skip (back to the queue)",
    "u": "undo the last decision",
    "space": "play / pause",
    "j / l": "back / forward 5 s",
    "Esc": "leave the note field",
    "o": "original / processed audio (same playhead)",
    "?": "show / hide the guidelines",
}

HEAD = """
<script>
(() => {
  const BUTTONS = {a: "dv-accept", r: "dv-reject", s: "dv-skip", u: "dv-undo"};
  const CONNECTION_LOST = "Connection lost: the server cannot be reached. The last key you pressed may " +
    "not have been saved (the screen shows what was). This goes away when the server answers again.";
  const SESSION_LOST = "Your login has ended (the server restarted, or you logged out): the last key " +
    "you pressed was NOT saved. Everything saved before is kept; log in again to return to the same clip. ";
  const connBanner = (kind) => {
    let el = document.getElementById("dv-conn");
    if (!kind) { el?.remove(); return; }
    if (el && el.dataset.kind === kind) return;
    if (!el) {
      el = Object.assign(document.createElement("div"), {id: "dv-conn"});
      el.setAttribute("role", "alert");
      el.style.cssText = "position:fixed;top:0;left:0;right:0;z-index:1000;background:#b91c1c;color:#fff;" +
        "font-weight:bold;padding:.6em 1em;text-align:center";
      document.body.appendChild(el);
    }
    el.dataset.kind = kind;
    el.textContent = kind === "session" ? SESSION_LOST : CONNECTION_LOST;
    if (kind === "session") {
      const again = Object.assign(document.createElement("button"),
        {id: "dv-login-again", textContent: "Log in again"});
      again.style.cssText = "margin-left:1em;padding:.2em .8em;color:#000;background:#fff;border-radius:4px";
      again.onclick = () => location.reload();
      el.appendChild(again);
    }
  };
  const serverFetch = window.fetch.bind(window);
  window.fetch = async (input, init) => {
    const url = String((input && input.url) || input);
    const ours = url.includes("/gradio_api/") && !url.includes("/gradio_api/file=");
    let response;
    try {
      response = await serverFetch(input, init);
    } catch (error) {
      if (ours && document.getElementById("dv-conn")?.dataset.kind !== "session") connBanner("connection");
      throw error;
    }
    if (ours && (response.status === 401 || response.status === 403)) connBanner("session");
    else if (ours && response.ok && document.getElementById("dv-conn")?.dataset.kind === "connection") connBanner(null);
    if (ours && response.ok && url.includes("/run/predict") && await showEarly(response.clone())) {
      await new Promise((done) => requestAnimationFrame(() => setTimeout(done)));  // painted before Gradio redraws
    }
    return response;
  };
  // a saved decision's answer carries the next screen: its clip goes on screen now (its element is
  // buffered in the pool), before Gradio has redrawn the rest of the screen
  const showEarly = async (response) => {
    const data = await response.json().catch(() => null);
    const html = (data?.data || []).find((out) => typeof out === "string" && out.includes('id="dv-slot"'));
    const slot = document.getElementById("dv-slot");
    if (!html || !slot) return false;
    const next = Object.assign(document.createElement("template"), {innerHTML: html}).content.getElementById("dv-slot");
    if (!next || next.dataset.clip === slot.dataset.clip || !pool.has(next.dataset.src)) return false;
    for (const key of Object.keys(slot.dataset)) delete slot.dataset[key];
    Object.assign(slot.dataset, next.dataset);
    slot.replaceChildren();
    mount();
    return true;
  };
  const video = () => document.getElementById("dv-video");
  const pool = new Map();  // src -> <video>: the one on screen and the one loading
  const hiddenPool = () => document.getElementById("dv-prefetch-pool") || document.body.appendChild(
    Object.assign(document.createElement("div"), {id: "dv-prefetch-pool", hidden: true}));
  const element = (src) => {
    if (!pool.has(src))
      pool.set(src, Object.assign(document.createElement("video"), {src, preload: "auto", playsInline: true}));
    return pool.get(src);
  };
  const mount = () => {
    const slot = document.getElementById("dv-slot");
    if (playingOriginal && playingOriginal.dataset.clip !== slot?.dataset.clip) {  // a new clip: processed music again
      playingOriginal.pause(); playingOriginal.remove(); playingOriginal = null;
    }
    if (slot && slot.querySelector("video")) return;
    const keep = slot ? [slot.dataset.src, slot.dataset.nextSrc] : [];
    for (const [src, v] of pool) {
      v.pause(); v.removeAttribute("id");
      if (!keep.includes(src)) { v.removeAttribute("src"); v.load(); v.remove(); pool.delete(src); }
    }
    if (!slot) return;
    const v = element(slot.dataset.src);
    Object.assign(v, {id: "dv-video", controls: true, muted: false});
    v.dataset.clip = slot.dataset.clip;
    v.style.cssText = "width:100%;max-height:60vh;background:#000";
    slot.appendChild(v);
    v.play().catch(() => {});
    const nextSrc = slot.dataset.nextSrc;
    const preload = () => {  // the next clip loads once this one can play (not competing with it)
      if (!nextSrc || document.getElementById("dv-slot")?.dataset.nextSrc !== nextSrc) return;
      const next = element(nextSrc);
      next.muted = true;
      if (!next.isConnected) hiddenPool().appendChild(next);
    };
    if (v.readyState >= 3) preload();
    else for (const type of ["canplay", "error"]) v.addEventListener(type, preload, {once: true});
  };
  // o: the source's own audio (an <audio> kept at the video's playhead, the video muted) or the processed music
  let playingOriginal = null;  // the <audio> of the source's own track, while a clip has one
  const original = () => playingOriginal;
  const audioMode = (text) => {
    const slot = document.getElementById("dv-slot");
    let label = document.getElementById("dv-audio-mode");
    if (!label && slot) {
      label = Object.assign(document.createElement("div"), {id: "dv-audio-mode"});
      label.style.cssText = "font-weight:bold;margin:.3em 0";
      slot.prepend(label);
    }
    if (label) label.textContent = text;
  };
  const toggleOriginal = () => {
    const v = video(), slot = document.getElementById("dv-slot");
    if (!v || !slot) return;
    if (!slot.dataset.originalSrc) { audioMode("no original audio for this clip (its source file is gone)"); return; }
    let a = original();
    if (a && a.dataset.clip === slot.dataset.clip && !v.muted) a = null;  // it was off: switch on below
    if (a && a.dataset.clip === slot.dataset.clip) {  // on: back to the processed music
      a.pause(); v.muted = false; audioMode("audio: processed music (o: original)"); return;
    }
    playingOriginal?.pause(); playingOriginal?.remove();
    a = playingOriginal = Object.assign(document.createElement("audio"),
      {id: "dv-original", preload: "auto", src: slot.dataset.originalSrc});
    a.dataset.clip = slot.dataset.clip;
    a.onerror = () => {
      v.muted = false; audioMode("original audio not ready yet: press o again in a moment");
      a.remove(); if (playingOriginal === a) playingOriginal = null;
    };
    slot.appendChild(a);
    a.currentTime = v.currentTime; v.muted = true;
    if (!v.paused) a.play().catch(() => {});
    audioMode("audio: ORIGINAL source (o: processed music)");
  };
  for (const type of ["play", "pause", "seeked", "ratechange"]) {
    document.addEventListener(type, (event) => {
      const a = original(), v = event.target;
      if (v.id !== "dv-video" || !a || a.dataset.clip !== v.dataset.clip || !v.muted) return;
      a.currentTime = v.currentTime; a.playbackRate = v.playbackRate;
      if (type === "play") a.play().catch(() => {}); else if (type === "pause") a.pause();
    }, true);
  }
  // the timeline: a screen sent before the clip's music was measured has a placeholder: ask for it (a few
  // times at most). A timeline of another clip (the screen before, or a late answer) is hidden at once,
  // and asked for again if it is still there a second later
  const asked = new Map();
  let timelineCheck = 0;
  const askTimeline = () => {
    timelineCheck = 0;
    const clip = document.getElementById("dv-slot")?.dataset.clip;
    const svg = document.getElementById("dv-timeline-svg");
    const stale = svg && svg.dataset.clip !== clip;
    if (stale) svg.style.visibility = "hidden";
    if (!clip || (asked.get(clip) || 0) >= 3) return;
    if (stale && !svg.dataset.seenStale) {
      svg.dataset.seenStale = "1";
      setTimeout(askTimeline, 1000);
    } else if (stale || document.getElementById("dv-timeline-pending")?.dataset.clip === clip) {
      asked.set(clip, (asked.get(clip) || 0) + 1);
      document.getElementById("dv-timeline-fetch")?.click();
    }
  };
  new MutationObserver(() => {
    mount();
    if (!timelineCheck) timelineCheck = setTimeout(askTimeline, 30);
  }).observe(document, {childList: true, subtree: true});
  let lastBeat = performance.now();
  const beat = () => { lastBeat = performance.now(); document.getElementById("dv-heartbeat")?.click(); };
  setInterval(() => {
    const slot = document.getElementById("dv-slot");
    if (!slot || document.visibilityState !== "visible") return;
    if (performance.now() - lastBeat >= Number(slot.dataset.heartbeatMs || 60000)) beat();
  }, 250);
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible" && document.getElementById("dv-slot")) beat();
  });
  const typing = (el) => el && (el.tagName === "TEXTAREA" || el.isContentEditable ||
    (el.tagName === "INPUT" && !["checkbox", "radio", "button"].includes(el.type)));
  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey || event.repeat) return;
    if (typing(event.target)) {
      if (event.key === "Escape") event.target.blur();
      return;
    }
    const key = event.key.toLowerCase();
    const v = video();
    if (BUTTONS[key]) {
      document.getElementById(BUTTONS[key])?.click();
    } else if (key >= "1" && key <= "5") {
      document.querySelectorAll("#dv-reasons input[type=checkbox]")[Number(key) - 1]?.click();
    } else if (key === "o") {
      toggleOriginal();
    } else if (key === "?") {
      document.querySelector("#dv-guidelines button, #dv-guidelines .label-wrap")?.click();
    } else if (key === " " && v) {
      v.paused ? v.play() : v.pause();
    } else if ((key === "j" || key === "l") && v) {
      v.currentTime = Math.max(0, v.currentTime + (key === "l" ? 5 : -5));
    } else {
      return;
    }
    event.preventDefault();
  });
  document.addEventListener("timeupdate", (event) => {
    const head = document.getElementById("dv-playhead");
    if (event.target.id !== "dv-video" || !head || !event.target.duration) return;
    const x = 1000 * event.target.currentTime / event.target.duration;
    head.setAttribute("x1", x); head.setAttribute("x2", x);
  }, true);
  document.addEventListener("click", (event) => {
    const change = event.target.closest && event.target.closest(".dv-change-vote");
    const target = document.querySelector("#dv-change-target textarea, #dv-change-target input");
    if (change && target) {  // a recent decision: reopen that clip (the hidden #dv-change button)
      target.value = change.dataset.clip;
      target.dispatchEvent(new Event("input", {bubbles: true}));
      setTimeout(() => document.getElementById("dv-change")?.click(), 50);
      return;
    }
    const svg = event.target.closest && event.target.closest("#dv-timeline-svg");
    const v = video();
    if (!svg || !v || !v.duration) return;
    const box = svg.getBoundingClientRect();
    v.currentTime = v.duration * (event.clientX - box.left) / box.width;
  });
})();
</script>
"""
