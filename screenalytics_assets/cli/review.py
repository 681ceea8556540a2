"""``screenalytics review EP_ID OPERATION ...``: edit an episode's identities by hand.

Each operation is appended to the episode's ``identity_edits.json`` (atomic write) and recorded
as a new data version of the ``identity_edits`` asset, which makes ``cast_links`` and
``screentime`` stale (and nothing upstream of them). ``--run`` re-materializes those two at once.
"""

from __future__ import annotations

import json

from ..core.ep_id import parse_ep_id, validate_ep_id
from .common import (
    add_common_args,
    execute,
    instance_for,
    load_without_collections,
    storage_for,
)

STALE_BY_EDITS = ("cast_links", "screentime")


def register(sub) -> None:
    p = sub.add_parser(
        "review", help="edit an episode's identities: rename, merge, move/delete a track, "
                       "link/unlink a cast member",
        description="Record a reviewer's edit of EP_ID (identity and track numbers as in the "
                    "screen-time table and tracks.jsonl). Edits are applied in order on top of "
                    "clustering and automatic cast links.")
    p.add_argument("ep_id", help="episode id, e.g. rhobh-s05e14")
    add_common_args(p)
    p.add_argument("--run", action="store_true",
                   help="re-materialize cast_links and screentime now and print the table")
    p.add_argument("--profile", help="settings profile for --run (default: balanced)")
    ops = p.add_subparsers(dest="op", required=True)
    o = ops.add_parser("rename", help="give an identity a display name")
    o.add_argument("identity", type=int)
    o.add_argument("name")
    o = ops.add_parser("merge", help="merge identity SOURCE into TARGET")
    o.add_argument("source", type=int)
    o.add_argument("target", type=int)
    o = ops.add_parser("move-track", help="move TRACK to identity TARGET")
    o.add_argument("track", type=int)
    o.add_argument("target", type=int)
    o = ops.add_parser("delete-track", help="drop TRACK from the episode's identities")
    o.add_argument("track", type=int)
    o = ops.add_parser("link", help="link an identity to a cast member")
    o.add_argument("identity", type=int)
    o.add_argument("cast_id")
    o.add_argument("--teach", action="store_true",
                   help="also add the identity's faces to the show's reviewed references, so "
                        "the show's episodes link against them (`facebank add-reviewed`)")
    o = ops.add_parser("unlink", help="mark an identity as no cast member")
    o.add_argument("identity", type=int)
    o = ops.add_parser("show", help="print the screen-time table after review, the identities "
                                    "and the numbered edits (`undo` removes the last)")
    o.add_argument("--json", action="store_true",
                   help="print one JSON document instead: screen time rows, identities, edits")
    ops.add_parser("queue", help="print what needs a decision: identities marked needs_review "
                                 "with their suggestions, then merge suggestions")
    ops.add_parser("undo", help="remove the last edit")
    ops.add_parser("clear", help="delete every edit of the episode")
    p.set_defaults(func=run)


def run(args) -> int:
    if args.run:
        load_without_collections()  # until the job runs (common.freeze_loaded_objects)
    from resources.edits import add_edit, clear_edits, read_edits, undo_last_edit

    from ..assets.cast import record_edits_version

    ep_id = validate_ep_id(args.ep_id)
    root, storage = storage_for(args)
    store = storage.store()
    if args.op == "show" and not args.run:
        return show(store, ep_id, args.json)
    if args.op == "queue":
        return print_queue(store, ep_id, args.profile)
    if args.op == "clear":
        clear_edits(store, ep_id)
    elif args.op == "undo":
        edit, data = undo_last_edit(store, ep_id)
        number = 1 + (len(json.loads(data)["edits"]) if data else 0)  # as `show` numbers it
        print(f"{ep_id}: removed the last edit, #{number} ({edit['op']})")
    elif args.op != "show":  # show --run: nothing to record, re-materialize and show
        op = args.op.replace("-", "_")
        kw = {k: getattr(args, k) for k in ("identity", "source", "target", "track", "name",
                                            "cast_id") if hasattr(args, k)}
        edit, _ = add_edit(store, ep_id, op, **kw)
        print(f"{ep_id}: recorded {op} " + json.dumps(
            {k: v for k, v in edit.items() if k != "op"}, separators=(",", ":"))[:200])
    instance = instance_for(root)
    if getattr(args, "teach", False):
        from resources.facebank import add_reviewed

        from ..assets.cast import record_reviewed_change

        _, ref = add_reviewed(store, ep_id, args.identity, args.cast_id)
        episodes = record_reviewed_change(instance, store, parse_ep_id(ep_id).show)
        print(f"reviewed reference {ref.name} of {ref.cast_id} added: cast_links of "
              f"{len(episodes)} episode(s) of the show are now stale")
    if args.op != "show":
        version = record_edits_version(instance, ep_id, read_edits(store, ep_id))
        print(f"identity_edits version {version}: {', '.join(STALE_BY_EDITS)} are now stale")
    if args.run:
        from dagster import AssetKey

        from resources.integrity import load_artifact

        from ..definitions import EPISODE_JOB, build_definitions
        from ..settings import load_settings
        from .run import print_report

        settings = load_settings(profile=args.profile)
        job = build_definitions(settings, storage=storage).resolve_job_def(EPISODE_JOB)
        execute(job, instance, ep_id, [AssetKey(a) for a in STALE_BY_EDITS])
        if args.op == "show":
            return show(store, ep_id, args.json)
        print_report(load_artifact(store, ep_id, "screentime"))
    return 0


def edit_list(current) -> list[dict]:
    """The edits in file order, numbered from 1 as ``undo`` counts them (it removes the highest
    number): ``{"n", "op", "summary"}`` for an applied edit, ``{"n", "op", "not_applied"}`` (the
    reason) for one that no longer applies."""
    rows = [{"n": a["index"] + 1, "op": a["op"], "summary": a["summary"]}
            for a in current.applied]
    rows += [{"n": s["index"] + 1, "op": s["op"], "not_applied": s["reason"]}
             for s in current.skipped]
    return sorted(rows, key=lambda r: r["n"])


def show(store, ep_id: str, as_json: bool = False) -> int:
    """``review EP show``: the screen-time table of the last ``screentime`` materialization
    (saying whether it includes every edit), the identities after review and the numbered
    edits; with ``as_json`` one JSON document of the same.

    Raises:
        ArtifactError: identities or tracks were not materialized (names the command).
    """
    from resources.edits import current_review, read_edits
    from resources.integrity import load_artifact

    from ..core.review import edits_version
    from .run import print_report

    current, _, _ = current_review(store, ep_id)
    version = edits_version(read_edits(store, ep_id))
    materialized = store.exists(store.artifact_key(ep_id, "screentime.json"))
    report = load_artifact(store, ep_id, "screentime") if materialized else None
    applied = (load_artifact(store, ep_id, "cast_links").edits_version if materialized
               else None)
    edits = edit_list(current)
    if as_json:
        print(json.dumps({
            "ep_id": ep_id, "edits_version": version,
            "screentime_edits_version": applied, "screentime_up_to_date": applied == version,
            "screentime": report.rows() if report else None,
            "identities": [i.to_dict() for i in current.identities], "edits": edits},
            indent=1))
        return 0
    from rich.console import Console
    from rich.table import Table

    console = Console(width=110)
    if report is None:
        console.print(f"{ep_id}: screen time not materialized yet: run `screenalytics run "
                      f"--ep-id {ep_id} --stale-only`")
    else:
        print_report(report)
        if applied == version:
            console.print(f"screen time includes every edit (edits version {version})")
        else:
            console.print(f"[yellow]screen time is from before the latest edits[/] (edits "
                          f"version {applied}, now {version}): `screenalytics review {ep_id} "
                          "--run show` brings it up to date")
    table = Table(title=f"Identities after review — {ep_id}")
    for col in ("identity", "name", "cast", "link", "tracks", "suggestions"):
        table.add_column(col, justify="right" if col == "tracks" else "left")
    for i in current.identities:
        link = "—" if not i.cast_id else (
            "reviewed" if i.link_source == "manual" else
            f"automatic {i.score:.2f}" if i.score is not None else "automatic")
        table.add_row(f"id_{i.identity_id:02d}", i.name or "—", i.cast_id or "—", link,
                      str(len(i.track_ids)), ", ".join(
                          f"{s['cast_id']} {s['score']:.2f}" for s in i.suggestions[:3]))
    console.print(table)
    if not edits:
        console.print("no review edits")
    else:
        console.print(f"{len(edits)} edit(s), oldest first; `undo` removes #{len(edits)}:")
        for e in edits:
            what = e.get("summary") or f"[yellow]not applied:[/] {e['not_applied']}"
            console.print(f"  {e['n']:>3}. {e['op']}: {what}", highlight=False)
    return 0


def print_queue(store, ep_id: str, profile: str | None) -> int:
    """Print the review queue (``resources.edits.episode_review_queue``) with the command that
    accepts each item."""
    from resources.edits import episode_review_queue

    from ..settings import load_settings

    thresh = load_settings(profile=profile)["cluster_thresh"]
    queue = episode_review_queue(store, ep_id, thresh)
    pending = [q for q in queue if q.kind == "needs_review"]
    merges = [q for q in queue if q.kind == "merge"]
    print(f"{ep_id}: {len(pending)} identit{'y' if len(pending) == 1 else 'ies'} to review, "
          f"{len(merges)} merge suggestion(s)")
    for q in pending:
        (ident,) = q.identity_ids
        ranked = ", ".join(f"{s['cast_id']} {s['score']:.2f}" for s in q.suggestions[:3])
        print(f"  needs review: identity {ident} ({ranked})  accept: screenalytics review "
              f"{ep_id} link {ident} {q.suggestions[0]['cast_id']}")
    for q in merges:
        source, target = q.identity_ids
        names = " / ".join(c or "unknown" for c in q.cast_ids)
        print(f"  merge: identity {source} into {target} ({names}; centroid distance "
              f"{q.distance:.2f}, cluster_thresh {q.thresh:.2f}; never on screen together)  "
              f"accept: screenalytics review {ep_id} merge {source} {target}")
    return 0
