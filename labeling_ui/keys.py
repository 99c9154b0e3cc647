"""The browser side of the review screen: the video player, keyboard shortcuts, the playhead.

`HEAD` goes into the page's `<head>` (Gradio's `launch(head=...)`). The player: whenever the
server's slot (`views.player_html`) changes, the clip's `<video>` is put into it, and the next
clip's `<video>` starts loading in a hidden pool; the element itself moves into the next slot,
so that clip plays from its buffer at once. Keys act unless the
cursor is in a text field (Escape leaves it): a accept, r reject, 1-5 toggle a reject
reason, s skip, u undo, space play/pause, j/l back/forward 5 s. A click on the timeline seeks.
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
}

HEAD = """
<script>
(() => {
  const BUTTONS = {a: "dv-accept", r: "dv-reject", s: "dv-skip", u: "dv-undo"};
  const video = () => document.getElementById("dv-video");
  const pool = new Map();  // src -> <video>: the one on screen and the one loading
  const hiddenPool = () => document.getElementById("dv-prefetch-pool") || document.body.appendChild(
    Object.assign(document.createElement("div"), {id: "dv-prefetch-pool", hidden: true}));
  const element = (src) => {
    if (!pool.has(src)) pool.set(src, Object.assign(document.createElement("video"), {src, preload: "auto", playsInline: true}));
    return pool.get(src);
  };
  const mount = () => {
    const slot = document.getElementById("dv-slot");
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
    if (slot.dataset.nextSrc) {
      const next = element(slot.dataset.nextSrc);
      next.muted = true;
      if (!next.isConnected) hiddenPool().appendChild(next);
    }
  };
  new MutationObserver(mount).observe(document, {childList: true, subtree: true});
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
    const svg = event.target.closest && event.target.closest("#dv-timeline-svg");
    const v = video();
    if (!svg || !v || !v.duration) return;
    const box = svg.getBoundingClientRect();
    v.currentTime = v.duration * (event.clientX - box.left) / box.width;
  });
})();
</script>
"""
