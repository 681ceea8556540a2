"""The review web app: FastAPI routes over server-rendered Jinja2 templates, htmx for the bits
that update in place (progress of a re-materialization, more track thumbnails).

Edits go through ``resources.edits.add_edits`` / ``undo_last_edit`` (the code the CLI uses) and
are recorded as a new data version of ``identity_edits`` (as the CLI does); then
:class:`.runs.Runner` re-materializes the stale assets as Dagster runs. Forms are plain HTML
posts answered with a redirect, so every action also works without JavaScript.
"""

from __future__ import annotations

import logging
from pathlib import Path
from urllib.parse import quote

from dagster import DagsterInstance
from fastapi import FastAPI, Form, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from resources.edits import StaleEditError, add_edits, read_edits, undo_last_edit
from resources.storage import ArtifactStore, LocalStore

from ..assets.cast import record_edits_version
from ..core.errors import InvalidEpIdError, ScreenalyticsError
from ..core.review import ReviewError
from . import data
from .runs import Runner

HERE = Path(__file__).parent
log = logging.getLogger("screenalytics.review_app")


def create_app(store: ArtifactStore, instance: DagsterInstance, runner: Runner) -> FastAPI:
    """The review app over ``store`` (local or S3) and the Dagster ``instance``.

    Args:
        store: where the episodes' artifacts and videos are.
        instance: the Dagster instance the episodes are registered and materialized on.
        runner: starts the re-materializations after an edit.
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

    templates.env.globals.update(thumb_url=thumb_url, video_url=video_url,
                                 page_size=data.PAGE_SIZE)

    def page(request: Request, name: str, status: int = 200, **ctx) -> HTMLResponse:
        return templates.TemplateResponse(request, name, ctx, status_code=status)

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

    # ------------------------------------------------------------------ pages
    @app.get("/", response_class=HTMLResponse)
    def index(request: Request):
        running = runner.running_episodes() | data.episodes_in_flight(instance)
        rows = data.episode_rows(store, instance, running)
        return page(request, "index.html", episodes=rows,
                    seasons=data.season_tables(store, instance))

    @app.get("/episodes/{ep_id}", response_class=HTMLResponse)
    def episode(request: Request, ep_id: str, request_id: str | None = None,
                done: str | None = None, failed: str | None = None):
        view = data.episode_view(store, instance, ep_id)
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
    def track_page(request: Request, ep_id: str, identity_id: int, page_no: int = 1):
        view = data.episode_view(store, instance, ep_id)
        card = next((c for c in view.cards if c.identity_id == identity_id), None)
        if card is None:
            raise data.NotFoundError(f"episode {view.ep_id} has no identity {identity_id} now")
        if not 1 <= page_no <= card.pages:
            raise data.NotFoundError(f"identity {identity_id} has {card.pages} page(s) of "
                                     f"tracks, not {page_no}")
        return page(request, "tracks_page.html", view=view, card=card, page_no=page_no)

    @app.get("/episodes/{ep_id}/tracks/{track_id}", response_class=HTMLResponse)
    def track(request: Request, ep_id: str, track_id: int):
        return page(request, "track.html", t=data.track_view(store, instance, ep_id, track_id))

    @app.get("/episodes/{ep_id}/thumbs/{track_id}.jpg")
    def thumb(ep_id: str, track_id: int):
        ep_id = data.check_episode(instance, ep_id)
        key = data.thumb_key(store, ep_id, track_id)
        if not store.exists(key):
            raise data.NotFoundError(f"no thumbnail of track {track_id} in {ep_id}; "
                                     "re-materialize track_reps")
        if local:
            return FileResponse(store.path(key), media_type="image/jpeg")
        return RedirectResponse(store.share_url(key), 307)

    @app.get("/episodes/{ep_id}/faces/{face_id}.jpg")
    def face(ep_id: str, face_id: int):
        ep_id = data.check_episode(instance, ep_id)
        return Response(data.face_jpeg(store, ep_id, face_id), media_type="image/jpeg")

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
        prog = runner.progress(instance, request_id)
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
    def edit(ep_id: str, op: str = Form(...), version: str = Form(...),
             identity: int | None = Form(None), identities: list[int] = Form([]),
             target: int | None = Form(None), track: int | None = Form(None),
             name: str | None = Form(None), cast_id: str | None = Form(None)):
        ep_id = data.check_episode(instance, ep_id)
        if op == "merge":
            if len(identities) < 2:
                raise ReviewError("select two or more identities to merge (the tick boxes on "
                                  "their cards), then press Merge")
            view = data.episode_view(store, instance, ep_id)
            chosen = [c for c in view.cards if c.identity_id in set(identities)]
            # the merged identity keeps the id of a linked one, else of the one on screen longest
            into = next((c for c in chosen if c.cast_id), chosen[0]).identity_id
            ops = [("merge", {"source": i, "target": into})
                   for i in identities if i != into]
        elif op in ("rename", "link", "unlink"):
            if identity is None:
                raise ReviewError(f"{op}: no identity given")
            args = {"identity": identity}
            if op == "rename":
                args["name"] = name
            if op == "link":
                if not cast_id:
                    raise ReviewError("link: choose a cast member first")
                args["cast_id"] = cast_id
            ops = [(op, args)]
        elif op in ("move_track", "delete_track"):
            if track is None:
                raise ReviewError(f"{op}: no track given")
            args = {"track": track}
            if op == "move_track":
                args["target"] = target
            ops = [(op, args)]
        else:
            raise ReviewError(f"unknown action {op!r}")
        add_edits(store, ep_id, ops, expected_version=version)
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
