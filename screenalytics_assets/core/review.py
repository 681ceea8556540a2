"""Reviewer edits of an episode's identities, applied on top of clustering and automatic links.

The edits are a list of operations in ``identity_edits.json`` (in the episode's manifests), applied
in order:

========================  ====================================================================
``rename``                give an identity a display name
``merge``                 move every track of ``source`` into ``target``; ``source`` disappears
``move_track``            move one track to another identity
``delete_track``          drop one track (a false detection, a poster, a photo on screen)
``link`` / ``unlink``     set / clear the identity's cast member (a manual decision that wins
                          over the automatic link). Several identities may be one cast member
                          (a frontal and a profile cluster of one person), as in automatic
                          linking; but two identities on screen at the same time are two
                          people, so linking takes the cast member from any other identity
                          whose tracks overlap this one's in time
========================  ====================================================================

Edits must survive a re-run of clustering, which renumbers identities, so an edit does not name an
identity by number alone. It stores an *anchor*: the identity's tracks at the time of the edit,
each as ``[track_id, start_frame, end_frame]``. When applied, the identity meant is the current one
holding most of the anchor's tracks (a track counts only if its frame span is unchanged, so a
re-run of tracking that reuses a number for another face does not match). Tracks are anchored the
same way. An edit whose identity or track is gone is not applied and is reported in
:attr:`ReviewResult.skipped` with the reason, never silently dropped.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

from .cast_links import IdentityLink
from .errors import ScreenalyticsError
from .facebank import FacebankError, validate_cast_id

EDITS_FILE = "identity_edits.json"
OPS = ("rename", "merge", "move_track", "delete_track", "link", "unlink")
NO_EDITS_VERSION = "no-edits"

Span = tuple[int, int]
"""``(start_frame, end_frame)`` of a track."""


class ReviewError(ScreenalyticsError, ValueError):
    """An edits file or a review operation is invalid (unknown identity or track, bad name...)."""


@dataclass
class ReviewedIdentity:
    """An identity after review.

    Attributes:
        identity_id: the clustering's id (a merge keeps the target's). track_ids: sorted.
        name: display name from a ``rename``, else ``None``. cast_id: linked cast member.
        link_source: ``"auto"`` (cast linking), ``"manual"`` (a ``link`` edit) or ``None``.
        score: cosine similarity to the linked cast member when known.
        suggestions: ranked ``{"cast_id", "score"}`` (best first).
        needs_review: the automatic linking found it ambiguous (``IdentityLink.needs_review``)
            and no reviewer has linked or unlinked it since.
    """

    identity_id: int
    track_ids: list[int]
    name: str | None = None
    cast_id: str | None = None
    link_source: str | None = None
    score: float | None = None
    suggestions: list[dict] = field(default_factory=list)
    needs_review: bool = False

    def to_dict(self) -> dict:
        return {"identity_id": self.identity_id, "track_ids": self.track_ids, "name": self.name,
                "cast_id": self.cast_id, "link_source": self.link_source, "score": self.score,
                "suggestions": self.suggestions, "needs_review": self.needs_review}


@dataclass
class ReviewResult:
    """Identities after the edits, and what happened to each edit.

    Attributes:
        identities: by identity id. applied: ``{"index", "op", "summary"}`` per applied edit.
        skipped: ``{"index", "op", "reason", "edit"}`` per edit that no longer applies.
    """

    identities: list[ReviewedIdentity]
    applied: list[dict] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)


# ---------------------------------------------------------------------------- the edits file
def edits_version(data: bytes | None) -> str:
    """Data version of an edits file: sha256 (16 hex) of its bytes; ``no-edits`` when absent."""
    return hashlib.sha256(data).hexdigest()[:16] if data is not None else NO_EDITS_VERSION


def parse_edits(data: bytes | None, source: str = EDITS_FILE) -> list[dict]:
    """The edits of an ``identity_edits.json`` (``None``: no file, no edits).

    Raises:
        ReviewError: not JSON, or an edit is malformed (names ``source`` and the edit's index).
    """
    if data is None:
        return []
    try:
        doc = json.loads(data)
    except ValueError as exc:
        raise ReviewError(f"{source} is not valid JSON ({exc}); fix or delete it") from exc
    edits = doc.get("edits") if isinstance(doc, dict) else None
    if not isinstance(edits, list):
        raise ReviewError(f"{source} must be an object with an 'edits' list; fix or delete it")
    for i, e in enumerate(edits):
        _check_edit(e, f"{source}, edit {i}")
    return edits


def dump_edits(ep_id: str, edits: list[dict]) -> bytes:
    """The ``identity_edits.json`` bytes for these edits (validated)."""
    for i, e in enumerate(edits):
        _check_edit(e, f"edit {i}")
    return (json.dumps({"ep_id": ep_id, "version": 1, "edits": edits}, indent=2) + "\n").encode()


def _check_edit(e: object, where: str) -> None:
    if not isinstance(e, dict) or e.get("op") not in OPS:
        raise ReviewError(f"{where}: expected an object with 'op' one of {', '.join(OPS)}")
    need = {"rename": ("identity", "name"), "merge": ("source", "target"),
            "move_track": ("track", "target"), "delete_track": ("track",),
            "link": ("identity", "cast_id"), "unlink": ("identity",)}[e["op"]]
    missing = [k for k in need if k not in e]
    if missing:
        raise ReviewError(f"{where} ({e['op']}): missing {', '.join(missing)}")
    for k in ("identity", "source", "target"):
        if k in e and not (isinstance(e[k], dict) and isinstance(e[k].get("tracks"), list)
                           and isinstance(e[k].get("identity_id"), int)):
            raise ReviewError(f"{where} ({e['op']}): {k} must be an identity anchor "
                              "{'identity_id': int, 'tracks': [[track_id, start, end], ...]}")
    if "track" in e and not (isinstance(e["track"], list) and len(e["track"]) == 3
                             and all(isinstance(x, int) for x in e["track"])):
        raise ReviewError(f"{where} ({e['op']}): track must be [track_id, start_frame, end_frame]")
    if e["op"] == "rename":
        validate_name(e["name"])
    if e["op"] == "link":
        try:
            validate_cast_id(e["cast_id"])
        except FacebankError as exc:
            raise ReviewError(f"{where} (link): {exc}") from exc


def validate_name(name: object) -> str:
    """A display name: 1-100 printable characters on one line. Raises ReviewError."""
    if not isinstance(name, str) or not name.strip() or len(name) > 100 \
            or not name.isprintable():
        raise ReviewError(f"invalid display name {name!r}: use 1-100 printable characters")
    return name.strip()


# ---------------------------------------------------------------------------- building edits
def identity_anchor(result: ReviewResult, identity_id: int, spans: dict[int, Span]) -> dict:
    """The anchor of an identity as it is now (see the module docstring).

    Raises:
        ReviewError: there is no identity ``identity_id`` (lists the ones there are).
    """
    ident = next((i for i in result.identities if i.identity_id == identity_id), None)
    if ident is None:
        raise ReviewError(
            f"unknown identity {identity_id}; this episode's identities are "
            f"{', '.join(str(i.identity_id) for i in result.identities) or '(none)'}")
    return {"identity_id": identity_id,
            "tracks": [[t, *spans[t]] for t in ident.track_ids]}


def track_anchor(result: ReviewResult, track_id: int, spans: dict[int, Span]) -> list[int]:
    """``[track_id, start_frame, end_frame]`` of a track that is in an identity now.

    Raises:
        ReviewError: no such track, or it was deleted by an earlier edit.
    """
    if track_id not in spans:
        raise ReviewError(f"unknown track {track_id}; this episode has tracks 0-{len(spans) - 1}"
                          if spans else f"unknown track {track_id}; this episode has no tracks")
    if not any(track_id in i.track_ids for i in result.identities):
        raise ReviewError(f"track {track_id} is in no identity (deleted by an earlier edit)")
    return [track_id, *spans[track_id]]


# ---------------------------------------------------------------------------- applying edits
def apply_edits(identities: list[tuple[int, list[int]]], links: list[IdentityLink],
                edits: list[dict], spans: dict[int, Span],
                cast_ids: list[str] | None = None) -> ReviewResult:
    """Apply the edits, in order, to the clustering and the automatic links.

    Args:
        identities: ``(identity_id, track_ids)`` from clustering.
        links: automatic links (:func:`.cast_links.link_identities`), one per identity.
        edits: from :func:`parse_edits`.
        spans: current ``track_id -> (start_frame, end_frame)`` of every track.
        cast_ids: the facebank's cast members; a ``link`` to another is skipped. ``None``: any.

    Returns:
        :class:`ReviewResult`; identities left with no track are dropped.
    """
    by_link = {l.identity_id: l for l in links}
    state: dict[int, ReviewedIdentity] = {}
    for ident, tracks in identities:
        link = by_link.get(ident)
        state[ident] = ReviewedIdentity(
            ident, sorted(int(t) for t in tracks),
            cast_id=link.cast_id if link else None,
            link_source="auto" if link and link.cast_id else None,
            score=link.score if link else None,
            suggestions=list(link.suggestions) if link else [],
            needs_review=bool(link and link.needs_review))
    result = ReviewResult([])
    for index, edit in enumerate(edits):
        try:
            summary = _apply_one(state, edit, spans, cast_ids)
        except _NotApplicable as exc:
            result.skipped.append({"index": index, "op": edit["op"], "reason": str(exc),
                                   "edit": edit})
        else:
            result.applied.append({"index": index, "op": edit["op"], "summary": summary})
    result.identities = [state[k] for k in sorted(state)]
    return result


class _NotApplicable(Exception):
    pass


def on_screen_together(tracks_a: list[int], tracks_b: list[int], spans: dict[int, Span]) -> bool:
    """True when a track of one identity and a track of the other overlap in time (their
    ``[start_frame, end_frame]`` spans intersect): two people, never one cast member (the rule of
    automatic linking, ``cast_links.identity_conflicts``, on frame spans)."""
    a = [spans[t] for t in tracks_a if t in spans]
    b = [spans[t] for t in tracks_b if t in spans]
    return any(s0 <= e1 and s1 <= e0 for s0, e0 in a for s1, e1 in b)


def _resolve(state: dict[int, ReviewedIdentity], anchor: dict, spans: dict[int, Span]
             ) -> ReviewedIdentity:
    valid = {t for t, a, b in anchor["tracks"] if spans.get(t) == (a, b)}
    best, best_n = None, 0
    for ident in state.values():
        n = len(valid & set(ident.track_ids))
        if n > best_n or (n == best_n and n and ident.identity_id == anchor["identity_id"]):
            best, best_n = ident, n
    if best is None:
        raise _NotApplicable(
            f"identity {anchor['identity_id']} (tracks "
            f"{', '.join(str(t[0]) for t in anchor['tracks'])}) no longer exists")
    return best


def _owner(state: dict[int, ReviewedIdentity], track: list[int], spans: dict[int, Span]
           ) -> ReviewedIdentity:
    t, a, b = track
    if spans.get(t) != (a, b):
        raise _NotApplicable(f"track {t} (frames {a}-{b}) no longer exists")
    for ident in state.values():
        if t in ident.track_ids:
            return ident
    raise _NotApplicable(f"track {t} is in no identity (deleted by an earlier edit)")


def _remove_track(state: dict[int, ReviewedIdentity], ident: ReviewedIdentity, t: int) -> None:
    ident.track_ids.remove(t)
    if not ident.track_ids:
        del state[ident.identity_id]


def _apply_one(state, e, spans, cast_ids) -> str:
    op = e["op"]
    if op == "rename":
        ident = _resolve(state, e["identity"], spans)
        ident.name = validate_name(e["name"])
        return f"identity {ident.identity_id} named {ident.name!r}"
    if op == "merge":
        src, dst = _resolve(state, e["source"], spans), _resolve(state, e["target"], spans)
        if src is dst:
            raise _NotApplicable(f"identities {e['source']['identity_id']} and "
                                 f"{e['target']['identity_id']} are already one identity "
                                 f"({dst.identity_id})")
        dst.track_ids = sorted(dst.track_ids + src.track_ids)
        if dst.cast_id is None and src.cast_id is not None:
            dst.cast_id, dst.link_source, dst.score = src.cast_id, src.link_source, src.score
        dst.needs_review = dst.cast_id is None and (dst.needs_review or src.needs_review)
        dst.name = dst.name or src.name
        best = {s["cast_id"]: s["score"] for s in dst.suggestions}
        for s in src.suggestions:
            best[s["cast_id"]] = max(best.get(s["cast_id"], s["score"]), s["score"])
        dst.suggestions = [{"cast_id": c, "score": v}
                           for c, v in sorted(best.items(), key=lambda kv: (-kv[1], kv[0]))]
        del state[src.identity_id]
        return f"identity {src.identity_id} merged into {dst.identity_id}"
    if op == "move_track":
        owner = _owner(state, e["track"], spans)
        dst = _resolve(state, e["target"], spans)
        t = e["track"][0]
        if owner is dst:
            raise _NotApplicable(f"track {t} is already in identity {dst.identity_id}")
        _remove_track(state, owner, t)
        dst.track_ids = sorted(dst.track_ids + [t])
        return f"track {t} moved from identity {owner.identity_id} to {dst.identity_id}"
    if op == "delete_track":
        owner = _owner(state, e["track"], spans)
        _remove_track(state, owner, e["track"][0])
        return f"track {e['track'][0]} deleted from identity {owner.identity_id}"
    if op == "link":
        ident = _resolve(state, e["identity"], spans)
        cast = e["cast_id"]
        if cast_ids is not None and cast not in cast_ids:
            raise _NotApplicable(f"cast member {cast!r} is not in the show's facebank")
        taken = []
        for other in state.values():
            if other is not ident and other.cast_id == cast \
                    and on_screen_together(ident.track_ids, other.track_ids, spans):
                other.cast_id, other.link_source, other.score = None, None, None
                taken.append(str(other.identity_id))
        note = (f" (unlinked from identity {', '.join(taken)}: on screen at the same time)"
                if taken else "")
        ident.cast_id, ident.link_source, ident.needs_review = cast, "manual", False
        ident.score = next((s["score"] for s in ident.suggestions if s["cast_id"] == cast), None)
        return f"identity {ident.identity_id} linked to {cast}{note}"
    ident = _resolve(state, e["identity"], spans)  # unlink
    was = ident.cast_id
    ident.cast_id, ident.link_source, ident.score = None, "manual", None
    ident.needs_review = False
    return f"identity {ident.identity_id} unlinked (was {was})"


def make_edit(op: str, current: ReviewResult, spans: dict[int, Span], *,
              identity: int | None = None, source: int | None = None, target: int | None = None,
              track: int | None = None, name: str | None = None, cast_id: str | None = None,
              cast_ids: list[str] | None = None) -> dict:
    """Build one edit against the episode as it is now (``current``: the existing edits applied).

    Args:
        op: one of :data:`OPS`. The other arguments are the operation's: ``identity`` (rename,
            link, unlink), ``source``/``target`` (merge), ``track``/``target`` (move_track),
            ``track`` (delete_track), ``name`` (rename), ``cast_id`` (link).
        cast_ids: the show's cast members (a link to another is refused); ``None``: unchecked.

    Returns:
        The edit, with anchors (see the module docstring).

    Raises:
        ReviewError: unknown identity or track, bad name or cast id, or an edit that would do
            nothing (merging an identity into itself, moving a track where it already is).
    """
    if op == "rename":
        return {"op": op, "identity": identity_anchor(current, identity, spans),
                "name": validate_name(name)}
    if op == "merge":
        if source == target:
            raise ReviewError(f"cannot merge identity {source} into itself")
        return {"op": op, "source": identity_anchor(current, source, spans),
                "target": identity_anchor(current, target, spans)}
    if op == "move_track":
        anchor = track_anchor(current, track, spans)
        dst = identity_anchor(current, target, spans)
        if any(t[0] == track for t in dst["tracks"]):
            raise ReviewError(f"track {track} is already in identity {target}")
        return {"op": op, "track": anchor, "target": dst}
    if op == "delete_track":
        return {"op": op, "track": track_anchor(current, track, spans)}
    if op == "link":
        try:
            validate_cast_id(cast_id)
        except FacebankError as exc:
            raise ReviewError(str(exc)) from exc
        if cast_ids is not None and cast_id not in cast_ids:
            raise ReviewError(f"cast member {cast_id!r} is not in the show's facebank "
                              f"({', '.join(cast_ids) or 'empty'}); add photos with "
                              "`screenalytics facebank add` first")
        return {"op": op, "identity": identity_anchor(current, identity, spans),
                "cast_id": cast_id}
    if op == "unlink":
        return {"op": op, "identity": identity_anchor(current, identity, spans)}
    raise ReviewError(f"unknown review operation {op!r}; use one of {', '.join(OPS)}")
