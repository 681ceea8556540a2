"""How the assets look in the Dagster UI: screen-time metadata (numeric per person, so the
asset's *Plots* tab charts it over materializations; the chart inline; a table with names) and
the catalog attributes (owners, tags, kinds) of every asset."""

from __future__ import annotations

import base64
import re

import pandas as pd
from dagster import (
    AssetsDefinition,
    AssetSpec,
    MetadataValue,
    TableColumn,
    TableRecord,
    TableSchema,
)

from ..core.artifacts import ScreenTimeReport
from ..core.season import TOTAL

OWNERS = ["team:screenalytics"]

#: Per asset: (kinds shown on the asset node and in the catalog, tags). Kinds name the
#: technology each stage runs on; the storage backend (``local`` or ``s3``) is added to all.
CATALOG: dict[str, tuple[set[str], dict[str, str]]] = {
    "episode_video": ({"video"}, {"stage": "source"}),
    "detections": ({"onnx", "pyav"}, {"stage": "detection"}),
    "tracks": ({"python"}, {"stage": "tracking"}),
    "faces": ({"pyav", "numpy"}, {"stage": "faces"}),
    "embeddings": ({"onnx", "numpy"}, {"stage": "faces"}),
    "identities": ({"scipy"}, {"stage": "identities"}),
    "track_reps": ({"numpy"}, {"stage": "identities"}),
    "identity_edits": ({"json"}, {"stage": "review"}),
    "facebank": ({"onnx"}, {"stage": "cast"}),
    "cast_links": ({"scipy"}, {"stage": "review"}),
    "screentime": ({"pandas"}, {"stage": "report"}),
    "season_screentime": ({"pandas"}, {"stage": "report"}),
}


def _md_image(png: bytes, alt: str) -> MetadataValue:
    return MetadataValue.md(f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})")


def _seconds_key(label: str) -> str:
    """Metadata key of one person's seconds: ``seconds: <label>`` (printable, one line)."""
    return "seconds: " + re.sub(r"[^\w.@:+-]+", "_", label)[:80]


def screentime_metadata(report: ScreenTimeReport, png: bytes) -> dict:
    """Materialization metadata of ``screentime``.

    Returns:
        ``chart`` (the PNG inline in Markdown), ``screen_time`` (a table: person, cast id,
        identity, seconds, tracks, first/last second; the person is the name, cast id or
        ``id_NN``, never empty), one float ``seconds: <person>`` per person (plottable), and
        ``cast_seconds`` (cast id -> seconds, 0 for cast members not on screen).
    """
    rows = report.labelled_rows()
    schema = TableSchema(columns=[
        TableColumn("person", "string"), TableColumn("cast_id", "string"),
        TableColumn("identity_id", "int"), TableColumn("seconds", "float"),
        TableColumn("n_tracks", "int"), TableColumn("first_ts", "float"),
        TableColumn("last_ts", "float")])
    table = MetadataValue.table(
        [TableRecord({c.name: r[c.name] for c in schema.columns}) for r in rows], schema)
    per_person = {}
    for r in rows:  # two people with one label (a name given twice) add up, as in the chart
        key = _seconds_key(r["person"])
        per_person[key] = round(per_person.get(key, 0.0) + float(r["seconds"]), 3)
    return {"chart": _md_image(png, "screen time"), "screen_time": table,
            "cast_seconds": MetadataValue.json(report.cast_seconds()),
            **{k: MetadataValue.float(v) for k, v in per_person.items()}}


def season_metadata(table: pd.DataFrame, png: bytes) -> dict:
    """Materialization metadata of ``season_screentime`` from its table (see
    ``core.season.season_table``): the chart inline, a table (person, each episode, total) and
    one float ``seconds: <person>`` per person (season total, plottable)."""
    episodes = [c for c in table.columns if c != TOTAL]
    schema = TableSchema(columns=[TableColumn("person", "string"),
                                  *[TableColumn(e, "float") for e in episodes],
                                  TableColumn(TOTAL, "float")])
    records = [TableRecord({"person": str(person),
                            **{c: float(row[c]) for c in [*episodes, TOTAL]}})
               for person, row in table.iterrows()]
    return {"chart_image": _md_image(png, "season screen time"),
            "season_table": MetadataValue.table(records, schema),
            **{_seconds_key(str(p)): MetadataValue.float(round(float(v), 3))
               for p, v in table[TOTAL].items()}}


def with_catalog_attributes(assets: list, backend: str) -> list:
    """The assets with owners, tags and kinds (see :data:`CATALOG`), plus the storage backend
    as a kind. Assets not in the catalog get the owners and the backend kind only."""

    def attrs(spec: AssetSpec) -> AssetSpec:
        kinds, tags = CATALOG.get(spec.key.path[-1], (set(), {}))
        new_kinds = (kinds | {backend}) - set(spec.kinds)
        return spec.merge_attributes(owners=[o for o in OWNERS if o not in spec.owners],
                                     tags={**tags, "domain": "screen-time"},
                                     kinds=new_kinds)

    return [a.map_asset_specs(attrs) if isinstance(a, AssetsDefinition) else a for a in assets]
