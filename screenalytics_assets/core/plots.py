"""Charts of an episode's screen time (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

import io

from .screentime import PersonTime


def screentime_chart(ep_id: str, duration_s: float, people: list[PersonTime],
                     dpi: int = 100) -> bytes:
    """A PNG with two panels: seconds on screen per person (bars) and when each person is on
    screen (a timeline of their intervals over the episode).

    Args:
        ep_id: episode, for the title. duration_s: episode length (s), the timeline's x range.
        people: most seconds first (as :func:`.screentime.screen_time` orders them); linked cast
            members are drawn in colour, unknown identities in grey.
        dpi: resolution; the figure is 10 x (2 + 0.35 per person) inches.

    Returns:
        PNG bytes.
    """
    import matplotlib  # imported here: a second of start-up that planning a run does not need
    from matplotlib.figure import Figure  # no pyplot: headless (Agg canvas), no display needed

    n = max(len(people), 1)
    fig = Figure(figsize=(10, 2.0 + 0.35 * n), dpi=dpi, layout="constrained")
    bars, timeline = fig.subplots(1, 2, width_ratios=[1, 2], sharey=True)
    labels = [p.label for p in people]
    ys = list(range(len(people)))
    palette = matplotlib.colormaps["tab10"]
    colors = [palette(i % 10) if p.cast_id else (0.6, 0.6, 0.6, 1.0)
              for i, p in enumerate(people)]
    bars.barh(ys, [p.seconds for p in people], color=colors)
    for y, p in zip(ys, people):
        bars.text(p.seconds, y, f" {p.seconds:.1f}s", va="center", fontsize=8)
    bars.set_yticks(ys, labels, fontsize=9)
    bars.invert_yaxis()
    bars.set_xlabel("seconds on screen")
    bars.set_xlim(0, max([p.seconds for p in people] + [1.0]) * 1.25)
    for y, (p, c) in enumerate(zip(people, colors)):
        timeline.broken_barh([(a, b - a) for a, b in p.intervals], (y - 0.35, 0.7), color=c)
    timeline.set_xlim(0, max(duration_s, 1e-3))
    timeline.set_xlabel("episode time (s)")
    timeline.grid(axis="x", alpha=0.3)
    if not people:
        timeline.text(0.5, 0.5, "nobody on screen", transform=timeline.transAxes, ha="center")
    fig.suptitle(f"Screen time — {ep_id} ({duration_s:.1f} s)")
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
