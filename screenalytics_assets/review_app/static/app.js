// Click a segment (or "play from here"): play the episode from the segment's start.
document.addEventListener("click", (ev) => {
  const seg = ev.target.closest("[data-start]");
  const player = document.getElementById("player");
  if (!seg || !player) return;
  ev.preventDefault();
  const start = parseFloat(seg.dataset.start);
  const go = () => { player.currentTime = start; player.play().catch(() => {}); };
  if (player.readyState >= 1) go(); else player.addEventListener("loadedmetadata", go, {once: true});
  player.scrollIntoView({block: "nearest"});
});
