"""The review web app: FastAPI routes over server-rendered Jinja2 templates, htmx for the bits
that update in place (progress of a re-materialization, more track thumbnails).

Edits go through ``resources.edits.add_edits`` / ``undo_last_edit`` (the code the CLI uses) and
are recorded as a new data version of ``identity_edits`` (as the CLI does); then
:class:`.runs.Runner` re-materializes the stale assets as Dagster runs. Forms are plain HTML
posts answered with a redirect, so every action also works without JavaScript. Access (the
token, the CSRF check on every post) is :class:`.access.AccessMiddleware`, in front of every
route; path parts are validated before they name a file (ep_ids by ``validate_ep_id``, ids as
integers in range), and anything else is answered 400/404.
"""

from __future__ import annotations

import hashlib
import logging
import re
from pathlib import Path
from urllib.parse import quote

from dagster import DagsterInstance
from fastapi import FastAPI, Form, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from jinja2 import pass_context
from markupsafe import Markup, escape

from resources.edits import StaleEditError, add_edits, read_edits, undo_last_edit
from resources.storage import ArtifactStore, LocalStore

from ..assets.cast import record_edits_version
from ..core.errors import InvalidEpIdError, ScreenalyticsError
from ..core.review import ReviewError
from . import data
from .access import AccessMiddleware
from .runs import Runner

HERE = Path(__file__).parent
log = logging.getLogger("screenalytics.review_app")
#: Largest track, face or identity number a URL may name (ids are 0-based row numbers).
MAX_ID = 2**31 - 1
#: A re-materialization request id (``runs.Runner.start``).
_REQUEST_ID = re.compile(r"^[0-9a-f]{12}$")
#: How long a browser may reuse a thumbnail or face without asking (s); then it revalidates
#: with its ETag (304 when unchanged).
IMAGE_MAX_AGE_S = 300


def cached_image(request: Request, stamp: str, make) -> Response:
    """An image answered with an ETag made from ``stamp`` (what identifies its content: file
    size and mtime, the face's row and file), or 304 when the browser already has it.

    Args:
        make: ``headers -> Response``, called only when the image must be sent.
    """
    etag = f'"{hashlib.sha256(stamp.encode()).hexdigest()[:24]}"'
    headers = {"ETag": etag, "Cache-Control": f"private, max-age={IMAGE_MAX_AGE_S}"}
    sent = request.headers.get("if-none-match", "")
    if etag in [t.strip().removeprefix("W/") for t in sent.split(",")]:
        return Response(status_code=304, headers=headers)
    return make(headers)


def IdParam():  # noqa: N802  (a FastAPI parameter declaration)
    """A path part that must be an integer id in ``0..MAX_ID`` (400 otherwise)."""
    return PathParam(ge=0, le=MAX_ID)


def create_app(store: ArtifactStore, instance: DagsterInstance, runner: Runner,
               token: str | None = None) -> FastAPI:
    """The review app over ``store`` (local or S3) and the Dagster ``instance``.

    Args:
        store: where the episodes' artifacts and videos are.
        instance: the Dagster instance the episodes are registered and materialized on.
        runner: starts the re-materializations after an edit.
        token: the credential a user must log in with (``access.credential_from_env``);
            ``None``: no login, loopback requests only.
    """
    app = FastAPI(title="Screenalytics review", docs_url=None, redoc_url=None,
                  openapi_url=None)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    templates = Jinja2Templates(directory=HERE / "templates")
    local = isinstance(store, LocalStore)

    def thumb_url(ep_id: str, track_id: int) -> str:
        if local:
            return f"/episodes/{ep_id}/thumbs/{track_id}.jpg"
        return store.share_url(data.thumb_key(store, ep_id, track_id))

    def video_url(ep_id: str) -> str:
        return f"/episodes/{ep_id}/video" if local else store.share_url(store.video_key(ep_id))

    @pass_context
    def csrf_token(ctx) -> str:
        """The session's CSRF token (``AccessMiddleware`` sets it), for htmx's header."""
        return getattr(ctx["request"].state, "csrf_token", "")

    @pass_context
    def csrf_field(ctx) -> Markup:
        """The hidden field every form posts the CSRF token in."""
        return Markup('<input type="hidden" name="csrf_token" value="{}">').format(
            escape(csrf_token(ctx)))

    templates.env.globals.update(thumb_url=thumb_url, video_url=video_url, csrf_token=csrf_token,
                                 csrf_field=csrf_field, mmss=data.mmss,
                                 login_required=token is not None, page_size=data.PAGE_SIZE)

    def page(request: Request, name: str, status: int = 200, **ctx) -> HTMLResponse:
        return templates.TemplateResponse(request, name, ctx, status_code=status)

    def refused(scope, status: int, title: str, message: str) -> HTMLResponse:
        return page(Request(scope), "error.html", status, title=title, message=message,
                    ep_id=None)

    app.add_middleware(AccessMiddleware, token=token, refuse=refused)
    for name in ("base.html", "episode.html", "tracks_page.html", "index.html", "error.html"):
        templates.get_template(name)  # compiled now, not on the first visit

    # ------------------------------------------------------------------ errors
    def error_page(request: Request, status: int, title: str, message: str,
                   ep_id: str | None = None) -> HTMLResponse:
        return page(request, "error.html", status, title=title, message=message, ep_id=ep_id)

    @app.exception_handler(ScreenalyticsError)
    async def _known(request: Request, exc: ScreenalyticsError):
        status, title = 400, "Cannot do that"
        if isinstance(exc, InvalidEpIdError):
            title = "Unknown episode"
        elif isinstance(exc, data.NotFoundError):
            status, title = 404, "Not found"
        elif isinstance(exc, data.NotMaterializedError):
            status, title = 409, "Not materialized yet"
        elif isinstance(exc, StaleEditError):
            status, title = 409, "This page is out of date"
        elif isinstance(exc, ReviewError):
            title = "Edit refused"
        ep_id = request.path_params.get("ep_id")
        return error_page(request, status, title, str(exc),
                          ep_id if ep_id and not isinstance(exc, InvalidEpIdError) else None)

    @app.exception_handler(Exception)
    async def _unknown(request: Request, exc: Exception):
        log.exception("review app error on %s", request.url.path)
        return error_page(request, 500, "Something went wrong",
                          f"{type(exc).__name__}: the server log has the details.")

    @app.exception_handler(404)
    async def _no_route(request: Request, exc):
        return error_page(request, 404, "Not found", f"there is no page at {request.url.path}")

    @app.exception_handler(RequestValidationError)
    async def _bad_params(request: Request, exc: RequestValidationError):
        where = sorted({".".join(str(x) for x in e.get("loc", ())[1:]) or "request"
                        for e in exc.errors()})
        return error_page(request, 400, "Bad request",
                          f"{', '.join(where)}: not a valid value here (ids are whole numbers "
                          f"from 0 to {MAX_ID}); use the links on the app's pages")

    # ------------------------------------------------------------------ access
    @app.get("/login", response_class=HTMLResponse)
    def login(request: Request, next: str = "/", failed: str | None = None):
        if token is None:
            return RedirectResponse("/", 303)
        return page(request, "login.html", next=next, failed=failed is not None)

    @app.get("/favicon.ico")
    def favicon():
        return FileResponse(HERE / "static" / "favicon.svg", media_type="image/svg+xml")

    # ------------------------------------------------------------------ pages
    @app.get("/", response_class=HTMLResponse)
    def index(request: Request):
        running = runner.running_episodes() | data.episodes_in_flight(instance)
        rows = data.episode_rows(store, instance, running)
        return page(request, "index.html", episodes=rows,
                    seasons=data.season_summaries(store, instance))

    @app.get("/seasons/{key}", response_class=HTMLResponse)
    def season(request: Request, key: str):
        return page(request, "season.html", s=data.season_view(store, instance, key))

    @app.get("/seasons/{key}/season_screentime.csv")
    def season_csv(key: str):
        view = data.season_view(store, instance, key)
        if not view.materialized:
            raise data.NotFoundError(f"season {view.key} has no roll-up yet; its page says how "
                                     "to build one")
        return Response(view.csv(), media_type="text/csv", headers={
            "Content-Disposition": f'attachment; filename="{view.key}_screentime.csv"'})

    @app.get("/episodes/{ep_id}", response_class=HTMLResponse)
    def episode(request: Request, ep_id: str, request_id: str | None = None,
                done: str | None = None, failed: str | None = None):
        view = data.episode_view(store, instance, ep_id)
        # request ids go into the progress URL: only ids the runner makes
        request_id, done, failed = (x if x and _REQUEST_ID.match(x) else None
                                    for x in (request_id, done, failed))
        return page(request, "episode.html", view=view, request_id=request_id, done=done,
                    failed=failed, running=view.ep_id in runner.running_episodes())

    @app.get("/episodes/{ep_id}/queue", response_class=HTMLResponse)
    def review_queue(request: Request, ep_id: str):
        from ..settings import load_settings
        from .queue import queue_rows

        view = data.episode_view(store, instance, ep_id)
        thresh = load_settings()["cluster_thresh"]
        return page(request, "queue.html", view=view, thresh=thresh,
                    rows=queue_rows(store, view, thresh))

    @app.get("/episodes/{ep_id}/identities/{identity_id}/tracks", response_class=HTMLResponse)
    def track_page(request: Request, ep_id: str, identity_id: int = IdParam(),
                   page_no: int = 1):
        view = data.episode_view(store, instance, ep_id)
        card = view.card(identity_id)
        if not 1 <= page_no <= card.pages:
            raise data.NotFoundError(f"identity {identity_id} has {card.pages} page(s) of "
                                     f"tracks, not {page_no}")
        return page(request, "tracks_page.html", view=view, card=card, page_no=page_no)

    @app.get("/episodes/{ep_id}/tracks/{track_id}", response_class=HTMLResponse)
    def track(request: Request, ep_id: str, track_id: int = IdParam()):
        return page(request, "track.html", t=data.track_view(store, instance, ep_id, track_id))

    @app.get("/episodes/{ep_id}/thumbs/{track_id}.jpg")
    def thumb(request: Request, ep_id: str, track_id: int = IdParam()):
        ep_id = data.check_episode(instance, ep_id)
        key = data.thumb_key(store, ep_id, track_id)
        if not store.exists(key):
            raise data.NotFoundError(f"no thumbnail of track {track_id} in {ep_id}; "
                                     "re-materialize track_reps")
        if not local:
            return RedirectResponse(store.share_url(key), 307)
        return cached_image(request, f"{key}:{data.stamp(store, key)}", lambda headers:
                            FileResponse(store.path(key), media_type="image/jpeg",
                                         headers=headers))

    @app.get("/episodes/{ep_id}/faces/{face_id}.jpg")
    def face(request: Request, ep_id: str, face_id: int = IdParam()):
        ep_id = data.check_episode(instance, ep_id)
        key = store.artifact_key(ep_id, "faces_aligned.npy")
        stamp = f"{key}:{face_id}:{data.stamp(store, key) if store.exists(key) else ''}"
        return cached_image(request, stamp, lambda headers: Response(
            data.face_jpeg(store, ep_id, face_id), media_type="image/jpeg", headers=headers))

    @app.get("/episodes/{ep_id}/video")
    def video(ep_id: str):
        ep_id = data.check_episode(instance, ep_id)
        if not local:
            return RedirectResponse(store.share_url(store.video_key(ep_id)), 307)
        path = store.path(store.video_key(ep_id))
        if not path.is_file():
            raise data.NotFoundError(f"the video of {ep_id} is not in storage any more")
        return FileResponse(path, media_type="video/mp4")

    @app.get("/episodes/{ep_id}/progress/{request_id}", response_class=HTMLResponse)
    def progress(request: Request, ep_id: str, request_id: str):
        ep_id = data.check_episode(instance, ep_id)
        prog = runner.progress(instance, request_id) if _REQUEST_ID.match(request_id) else None
        if prog is None:
            raise data.NotFoundError(f"no re-materialization {request_id} in this app")
        if prog.state in ("succeeded", "failed"):
            key = "done" if prog.state == "succeeded" else "failed"
            return Response(status_code=200, headers={
                "HX-Redirect": f"/episodes/{ep_id}?{key}={quote(request_id)}"})
        return page(request, "progress.html", ep_id=ep_id, request_id=request_id, p=prog)

    # ------------------------------------------------------------------ edits
    def after_edit(ep_id: str) -> RedirectResponse:
        record_edits_version(instance, ep_id, read_edits(store, ep_id))
        request_id = runner.start(ep_id)
        return RedirectResponse(f"/episodes/{ep_id}?request_id={request_id}", 303)

    @app.post("/episodes/{ep_id}/edit")
    def edit(request: Request, ep_id: str, op: str = Form(...), version: str = Form(...),
             identity: int | None = Form(None), identities: list[int] = Form([]),
             target: int | None = Form(None), track: int | None = Form(None),
             name: str | None = Form(None), cast_id: str | None = Form(None),
             confirmed: bool = Form(False)):
        ep_id = data.check_episode(instance, ep_id)
        if op == "merge":
            if len(identities) < 2:
                raise ReviewError("select two or more identities to merge (the tick boxes on "
                                  "their cards), then press Merge")
            view = data.episode_view(store, instance, ep_id)
            chosen = sorted((view.card(i) for i in set(identities)),
                            key=lambda c: (-(c.seconds or 0.0), c.identity_id))
            # the merged identity keeps the id of a linked one, else of the one on screen longest
            into = next((c for c in chosen if c.cast_id), chosen[0]).identity_id
            ops = [("merge", {"source": c.identity_id, "target": into})
                   for c in chosen if c.identity_id != into]
        elif op in ("link", "link_selected"):
            chosen = identities if op == "link_selected" else \
                [identity] if identity is not None else []
            if not chosen:
                raise ReviewError("select the identities to link (the tick boxes on their "
                                  "cards), then choose a cast member" if op == "link_selected"
                                  else "link: no identity given")
            if not cast_id:
                raise ReviewError("link: choose a cast member first")
            view = data.episode_view(store, instance, ep_id)
            if view.cast_ids and cast_id not in view.cast_ids:  # refused before any question
                raise ReviewError(f"cast member {cast_id!r} is not in the show's facebank; "
                                  f"choose one of {', '.join(view.cast_ids)}")
            together = data.on_screen_together_pairs(store, view, chosen)
            if together:  # one link would take the cast member from the other
                a, b = together[0]
                raise ReviewError(f"{a.label} (id_{a.identity_id:02d}) and {b.label} "
                                  f"(id_{b.identity_id:02d}) are on screen at the same time, so "
                                  f"they cannot both be {cast_id}; link them one by one")
            weak = view.weak_links(chosen, cast_id)
            if weak and not confirmed:  # a weak match is linked only when confirmed
                return page(request, "confirm.html", view=view, cast_id=cast_id, weak=weak,
                            fields=[("op", op), ("version", version), ("cast_id", cast_id),
                                    *(("identities" if op == "link_selected" else "identity",
                                       i) for i in chosen)])
            ops = [("link", {"identity": i, "cast_id": cast_id}) for i in dict.fromkeys(chosen)]
        elif op in ("rename", "unlink"):
            if identity is None:
                raise ReviewError(f"{op}: no identity given")
            args = {"identity": identity}
            if op == "rename":
                args["name"] = name
            ops = [(op, args)]
        elif op in ("move_track", "delete_track"):
            if track is None:
                raise ReviewError(f"{op}: no track given")
            args = {"track": track}
            if op == "move_track":
                if target is None:
                    raise ReviewError("move track: choose the identity to move it to")
                args["target"] = target
            ops = [(op, args)]
        else:
            raise ReviewError(f"unknown action {op!r}")
        add_edits(store, ep_id, ops, expected_version=version)  # one write, one run: the batch
        return after_edit(ep_id)

    @app.post("/episodes/{ep_id}/rematerialize")
    def rematerialize(ep_id: str, version: str = Form(...)):
        ep_id = data.check_episode(instance, ep_id)
        return after_edit(ep_id)

    @app.post("/episodes/{ep_id}/undo")
    def undo(ep_id: str, version: str = Form(...)):
        ep_id = data.check_episode(instance, ep_id)
        undo_last_edit(store, ep_id, expected_version=version)
        return after_edit(ep_id)

    return app
