"""Season roll-up: seconds on screen per person per episode, as a table, JSON and a chart.

Identities are clustered per episode, so a person is known across episodes only by what review
and cast linking say: one row per person, labelled (:func:`person_labels`)

1. with the name a reviewer gave the identity (``screenalytics review EP rename``, or the review
   app), else
2. with the name a reviewer gave an identity linked to the same cast member in another episode of
   the season (the latest episode's, when they differ), else
3. with the cast id it is linked to, else
4. ``{ep_id}:id_{NN}`` (an identity nobody named or linked: its own row).

Identities with the same label are one person: their seconds are added per episode (two
identities linked to one cast member are never on screen at the same time, see
``core.cast_links``).
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping

import pandas as pd

from .artifacts import ScreenTimeReport

TOTAL = "total_s"


def person_label(ep_id: str, identity_id: int, cast_id: str | None,
                 name: str | None = None) -> str:
    """Row label of a person: the reviewed ``name``, else the cast id, else
    ``{ep_id}:id_{identity_id:02d}``."""
    return name or cast_id or f"{ep_id}:id_{identity_id:02d}"


def person_labels(reports: Mapping[str, ScreenTimeReport]) -> dict[tuple[str, int], str]:
    """``(ep_id, identity_id) -> row label`` for every person of every report, by the rules in
    the module docstring: a reviewed name, else a name reviewed for the same cast member
    elsewhere in the season, else the cast id, else ``{ep_id}:id_{NN}``."""
    cast_names: dict[str, str] = {}
    for ep in sorted(reports):  # the latest episode's name wins
        for p in reports[ep].people:
            if p.cast_id and p.name:
                cast_names[p.cast_id] = p.name
    return {(ep, p.identity_id): person_label(ep, p.identity_id, p.cast_id,
                                              p.name or cast_names.get(p.cast_id or ""))
            for ep, r in reports.items() for p in r.people}


def season_long(reports: Mapping[str, ScreenTimeReport]) -> pd.DataFrame:
    """One row per identity per episode, labelled by person (:func:`person_labels`).

    Args:
        reports: ep_id -> that episode's screen-time report.

    Returns:
        DataFrame with columns ``person`` (str), ``cast_id`` (str or None), ``ep_id`` (str),
        ``seconds`` (float64, s), sorted by ep_id then seconds descending.
    """
    labels = person_labels(reports)
    rows = [{"person": labels[(ep, p.identity_id)], "cast_id": p.cast_id,
             "ep_id": ep, "seconds": float(p.seconds)}
            for ep, r in reports.items() for p in r.people]
    df = pd.DataFrame(rows, columns=["person", "cast_id", "ep_id", "seconds"])
    df["seconds"] = df["seconds"].astype("float64")
    return df.sort_values(["ep_id", "seconds"], ascending=[True, False], ignore_index=True)


def season_table(reports: Mapping[str, ScreenTimeReport]) -> pd.DataFrame:
    """Seconds on screen, one row per person and one column per episode, plus ``total_s``.

    Returns:
        DataFrame indexed by ``person``; columns: the ep_ids in order, then ``total_s``; values
        float64 seconds (0.0 where the person is not in the episode); sorted by total, most first.

    Raises:
        ValueError: ``reports`` is empty.
    """
    if not reports:
        raise ValueError("no episode screen-time reports to roll up")
    episodes = sorted(reports)
    long = season_long(reports)
    wide = (long.groupby(["person", "ep_id"])["seconds"].sum().unstack("ep_id")
            .reindex(columns=episodes).fillna(0.0).astype("float64"))
    wide.columns.name = None
    wide[TOTAL] = wide[episodes].sum(axis=1)
    return wide.sort_values([TOTAL], ascending=False, kind="stable").round(3)


def season_json(key: str, table: pd.DataFrame) -> dict:
    """The table as a JSON-ready dict ``{season, episodes, people: [{person, total_s,
    by_episode: {ep_id: seconds}}]}``."""
    episodes = [c for c in table.columns if c != TOTAL]
    return {"season": key, "episodes": episodes,
            "people": [{"person": person, TOTAL: float(row[TOTAL]),
                        "by_episode": {ep: float(row[ep]) for ep in episodes}}
                       for person, row in table.iterrows()]}


def season_chart(key: str, table: pd.DataFrame, top: int = 15) -> bytes:
    """PNG bar chart: seconds per person (top ``top`` by total), stacked by episode."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    episodes = [c for c in table.columns if c != TOTAL]
    data = table.head(top)[episodes].iloc[::-1]
    fig, ax = plt.subplots(figsize=(8, 1.2 + 0.35 * max(len(data), 1)), dpi=100)
    try:
        if len(data):
            data.plot.barh(stacked=True, ax=ax, width=0.7)
            ax.legend(title="episode", fontsize=8, loc="lower right")
        ax.set_xlabel("seconds on screen")
        ax.set_ylabel("")
        ax.set_title(f"Screen time — {key}")
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
    finally:
        plt.close(fig)
    return buf.getvalue()


def season_files(key: str, table: pd.DataFrame) -> dict[str, bytes]:
    """``season_screentime.csv`` / ``.json`` / ``.png`` of a season table."""
    csv = table.reset_index().to_csv(index=False, float_format="%.3f").encode()
    doc = (json.dumps(season_json(key, table), indent=2) + "\n").encode()
    return {"season_screentime.csv": csv, "season_screentime.json": doc,
            "season_screentime.png": season_chart(key, table)}
