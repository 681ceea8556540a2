// The review pages' few interactions. Every action is also a plain form; this only plays video
// segments and drives the timeline (axis, zoom, pan, hover faces, keyboard).

// A time in seconds as m:ss (h:mm:ss from an hour), as data.mmss writes it on the server.
function mmss(t) {
  const s = Math.max(0, Math.floor(t)), h = Math.floor(s / 3600);
  const m = Math.floor(s / 60) % 60, sec = String(s % 60).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${sec}` : `${m}:${sec}`;
}

// A timeline segment's person (its lane's) and face (the thumbnail of its first track, through
// the app's route: a file locally, a redirect to the bucket on S3).
const personOf = (seg) => seg.closest(".lane").dataset.person;
const thumbOf = (seg) =>
  `${document.getElementById("timeline").dataset.thumbs}${seg.dataset.track}.jpg`;

// ---------------------------------------------------------------- playing a segment
let stopAt = null;       // the end (s) of the segment being played; the player pauses there
let current = null;      // the segment button being played

function playSegment(el) {
  const player = document.getElementById("player");
  if (!player) return;
  const start = parseFloat(el.dataset.start);
  stopAt = el.dataset.end ? parseFloat(el.dataset.end) : null;
  if (current) current.classList.remove("current");
  current = el.classList.contains("segment") ? el : null;
  if (current) {
    current.classList.add("current");
    current.scrollIntoView({block: "nearest", inline: "center"});
    const now = document.getElementById("now-playing");
    if (now) now.textContent = `${personOf(el)}: ${mmss(start)}–${mmss(stopAt)}`;
  }
  const go = () => { player.currentTime = start; player.play().catch(() => {}); };
  if (player.readyState >= 1) go(); else player.addEventListener("loadedmetadata", go, {once: true});
  player.scrollIntoView({block: "nearest"});
}

document.addEventListener("click", (ev) => {
  const seg = ev.target.closest("[data-start]");
  if (!seg) return;
  ev.preventDefault();
  playSegment(seg);
});

document.addEventListener("DOMContentLoaded", () => {
  const player = document.getElementById("player");
  if (player) player.addEventListener("timeupdate", () => {
    if (stopAt !== null && player.currentTime >= stopAt) { player.pause(); stopAt = null; }
  });
});

// ---------------------------------------------------------------- the timeline
function segmentsInOrder() {
  return [...document.querySelectorAll("#tl-inner .segment")]
    .sort((a, b) => parseFloat(a.dataset.start) - parseFloat(b.dataset.start));
}

// The next (step 1) or previous (step -1) segment in time, from the one playing (or the
// player's time when none is).
function stepSegment(step) {
  const segs = segmentsInOrder();
  if (!segs.length) return;
  let i = current ? segs.indexOf(current) : -1;
  if (i < 0) {
    const t = document.getElementById("player")?.currentTime || 0;
    i = segs.findIndex((s) => parseFloat(s.dataset.start) > t) - (step > 0 ? 1 : 0);
    if (i < -1) i = segs.length - (step > 0 ? 1 : 0);
  }
  const j = Math.min(segs.length - 1, Math.max(0, i + step));
  playSegment(segs[j]);
}

const ZOOMS = [1, 2, 4, 8, 16, 32, 64];
let zoom = 1;

// Ticks every 1, 2, 5, 10, 15, 30 s, 1, 2, 5, 10, 15, 30 min: the first at least 70 px apart.
function renderAxis() {
  const axis = document.getElementById("tl-axis"), inner = document.getElementById("tl-inner");
  const tl = document.getElementById("timeline");
  if (!axis || !inner || !tl) return;
  const duration = parseFloat(tl.dataset.duration), width = inner.clientWidth;
  const steps = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800];
  const step = steps.find((s) => s * width / duration >= 70) || 3600;
  axis.replaceChildren();
  for (let t = 0; t <= duration; t += step) {
    const tick = document.createElement("span");
    tick.className = "tick";
    tick.style.left = `${100 * t / duration}%`;
    tick.textContent = mmss(t);
    if ((duration - t) * width / duration < 40) tick.classList.add("last");  // label to its left
    axis.appendChild(tick);
  }
}

function setZoom(z) {
  const view = document.getElementById("tl-viewport"), inner = document.getElementById("tl-inner");
  if (!view || !inner) return;
  // keep the time in the middle of the view where it is
  const mid = (view.scrollLeft + view.clientWidth / 2) / inner.clientWidth;
  zoom = Math.min(ZOOMS[ZOOMS.length - 1], Math.max(1, z));
  inner.style.width = `${100 * zoom}%`;
  document.getElementById("zoom-level").textContent = `${zoom}×`;
  renderAxis();
  view.scrollLeft = mid * inner.clientWidth - view.clientWidth / 2;
}

function zoomBy(dir) {
  const i = ZOOMS.indexOf(zoom);
  setZoom(ZOOMS[Math.min(ZOOMS.length - 1, Math.max(0, i + dir))]);
}

document.addEventListener("DOMContentLoaded", () => {
  const view = document.getElementById("tl-viewport");
  if (!view) return;
  renderAxis();
  window.addEventListener("resize", renderAxis);
  const on = (id, f) => document.getElementById(id)?.addEventListener("click", f);
  on("zoom-in", () => zoomBy(1));
  on("zoom-out", () => zoomBy(-1));
  on("zoom-fit", () => setZoom(1));
  on("next-segment", () => stepSegment(1));
  on("prev-segment", () => stepSegment(-1));
  // ctrl + wheel zooms; a plain vertical wheel over the lanes pans
  view.addEventListener("wheel", (ev) => {
    if (ev.ctrlKey) { ev.preventDefault(); zoomBy(ev.deltaY < 0 ? 1 : -1); }
    else if (zoom > 1 && Math.abs(ev.deltaY) > Math.abs(ev.deltaX)) {
      ev.preventDefault(); view.scrollLeft += ev.deltaY;
    }
  }, {passive: false});
  // drag the axis to pan
  const axis = document.getElementById("tl-axis");
  let dragX = null;
  axis.addEventListener("mousedown", (ev) => { dragX = ev.clientX; ev.preventDefault(); });
  window.addEventListener("mousemove", (ev) => {
    if (dragX === null) return;
    view.scrollLeft -= ev.clientX - dragX;
    dragX = ev.clientX;
  });
  window.addEventListener("mouseup", () => { dragX = null; });
  // hover a segment: its face (the representative thumbnail of its first track)
  const preview = document.getElementById("face-preview");
  document.getElementById("tl-inner").addEventListener("mouseover", (ev) => {
    const seg = ev.target.closest(".segment");
    if (!seg) return;
    preview.querySelector("img").src = thumbOf(seg);
    preview.querySelector("span").textContent =
      `${personOf(seg)} ${mmss(seg.dataset.start)}–${mmss(seg.dataset.end)}`;
    const r = seg.getBoundingClientRect(), box = document.getElementById("timeline").getBoundingClientRect();
    preview.style.left = `${Math.max(0, r.left - box.left - 40)}px`;
    preview.style.top = `${r.bottom - box.top + 4}px`;
    preview.hidden = false;
  });
  document.getElementById("tl-inner").addEventListener("mouseout", (ev) => {
    if (ev.target.closest(".segment")) preview.hidden = true;
  });
});

// keyboard: next/previous segment, zoom; never while typing in a form field
document.addEventListener("keydown", (ev) => {
  if (!document.getElementById("tl-viewport") || ev.ctrlKey || ev.metaKey || ev.altKey) return;
  if (ev.target.closest("input, select, textarea, [contenteditable]")) return;
  const keys = {ArrowRight: () => stepSegment(1), n: () => stepSegment(1),
                ArrowLeft: () => stepSegment(-1), p: () => stepSegment(-1),
                "+": () => zoomBy(1), "=": () => zoomBy(1), "-": () => zoomBy(-1),
                "0": () => setZoom(1)};
  if (keys[ev.key]) { ev.preventDefault(); keys[ev.key](); }
});
