"""The review app's pages over tiny artifacts (no video, no browser): what each URL answers,
and bad input answered with a message, never a traceback. The browser tests on real footage
are in tests/test_review_app.py."""

from __future__ import annotations

import html
import http.cookiejar
import json
import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from contextlib import contextmanager

import pytest
import uvicorn
from dagster import DagsterInstance

from resources.edits import add_edit, read_edits
from screenalytics_assets.core.review import NO_EDITS_VERSION
from screenalytics_assets.partitions import EPISODES_PARTITION, register_episode
from screenalytics_assets.review_app.app import create_app
from screenalytics_assets.review_app.runs import Runner
from tests.s3_server import free_port
from tests.test_review_edits import EP, store  # noqa: F401  (the tiny episode fixture)


@contextmanager
def serving(app):
    """``app`` served by uvicorn on a free loopback port in a thread; yields its base URL."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=free_port(),
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{server.config.port}"
    finally:
        server.should_exit = True
        thread.join(10)


def tiny_instance() -> DagsterInstance:
    """An ephemeral instance with the tiny episode registered (and tiny-s01e02, not
    materialized)."""
    instance = DagsterInstance.ephemeral()
    register_episode(instance, EP)
    instance.add_dynamic_partitions(EPISODES_PARTITION, ["tiny-s01e02"])
    return instance


@pytest.fixture
def app_url(store, tmp_path):  # noqa: F811
    with serving(create_app(store, tiny_instance(), Runner(tmp_path / "requests"))) as url:
        yield url


class Browser:
    """What a browser keeps for one app: its session cookie and the CSRF token its pages carry
    (every post sends it back, as the app's forms do)."""

    def __init__(self) -> None:
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))
        self.csrf: str | None = None

    def request(self, url: str, data: dict | None = None,
                headers: dict | None = None) -> tuple[int, str]:
        if data is not None and self.csrf is None:
            self.request(urllib.parse.urljoin(url, "/"))
        if data is not None:
            data = {"csrf_token": self.csrf, **data}
        body = urllib.parse.urlencode(data, doseq=True).encode() if data is not None else None
        req = urllib.request.Request(url, data=body, headers=headers or {})
        try:
            with self.opener.open(req, timeout=30) as r:
                status, text = r.status, r.read().decode()
        except urllib.error.HTTPError as exc:
            status, text = exc.code, exc.read().decode()
        if m := re.search(r'(?:name="csrf_token" value="|"X-CSRF-Token": ")([^"]+)"', text):
            self.csrf = m[1]
        return status, html.unescape(text)


_BROWSERS: dict[str, Browser] = {}


def get(url: str, data: dict | None = None) -> tuple[int, str]:
    """GET ``url``, or POST the form ``data`` to it as the app's own page would (one session per
    app, with its CSRF token); returns ``(status, unescaped body)``."""
    origin = "{0.scheme}://{0.netloc}".format(urllib.parse.urlsplit(url))
    return _BROWSERS.setdefault(origin, Browser()).request(url, data)


def test_pages_and_their_messages(app_url, store):  # noqa: F811
    status, body = get(app_url + "/")
    assert status == 200 and EP in body and "not materialized" in body
    status, body = get(f"{app_url}/episodes/{EP}")
    assert status == 200 and body.count('class="card"') == 3
    assert f'id="edits-version">{NO_EDITS_VERSION}<' in body
    assert body.count("data-track=") == 3  # one thumbnail per track
    for url, want_status, want in [
        ("/episodes/Tiny_S1", 400, "invalid ep_id 'Tiny_S1'"),
        ("/episodes/tiny-s01e09", 404, "is not registered"),
        ("/episodes/tiny-s01e02", 409, "has not been materialized yet"),
        (f"/episodes/{EP}/tracks/7", 404, "has no track 7"),
        (f"/episodes/{EP}/identities/9/tracks", 404, "has no identity 9"),
        ("/no/such/page", 404, "there is no page at /no/such/page"),
    ]:
        status, body = get(app_url + url)
        assert (status, want in body) == (want_status, True), (url, status, body[-800:])
        assert "Traceback" not in body
    # an edit from a page built before someone else's edit is refused; nothing is written
    add_edit(store, EP, "rename", identity=0, name="First")
    before = read_edits(store, EP)
    status, body = get(f"{app_url}/episodes/{EP}/edit", {
        "op": "rename", "version": NO_EDITS_VERSION, "identity": 1, "name": "Second"})
    assert status == 409 and "This page is out of date" in body and "Reload" in body
    assert read_edits(store, EP) == before
    status, body = get(f"{app_url}/episodes/{EP}/edit", {
        "op": "merge", "version": "x", "identities": [1]})
    assert status == 400 and "select two or more identities" in body
    # the track deleted by an edit says so on its page
    add_edit(store, EP, "delete_track", track=2)
    status, body = get(f"{app_url}/episodes/{EP}/tracks/2")
    assert status == 404 and "was deleted by a review edit" in body


def test_weak_links_ask_first_and_a_batch_is_one_write_and_one_run(tmp_path):
    """Over HTTP: a link under cast_link_thresh answers a confirmation page and writes nothing
    until confirmed; an unknown cast member is refused outright; merging or linking several
    identities is one write and one re-materialization."""
    from resources.storage import LocalStore
    from tests.review_episode import CAST_LINK_THRESH, RecordingRunner, write_review_episode

    ep = "short-s01e01"
    store = LocalStore(tmp_path / "data")
    made = write_review_episode(store, ep, minutes=0.5, people=6, cast=4)
    instance = DagsterInstance.ephemeral()
    register_episode(instance, ep)
    runner = RecordingRunner(tmp_path / "requests")
    with serving(create_app(store, instance, runner)) as url:
        tab = Browser()
        status, body = tab.request(f"{url}/episodes/{ep}")
        assert status == 200 and "automatic" in body and "weak" in body
        version = re.search(r'id="edits-version">([^<]+)<', body)[1]
        links = json.loads(store.read_file(ep, "cast_links.json"))
        weak = next(i for i in links["identities"] if i["identity_id"] in made.weak)
        cast = weak["suggestions"][0]["cast_id"]
        assert weak["suggestions"][0]["score"] < CAST_LINK_THRESH
        form = {"op": "link", "version": version, "identity": weak["identity_id"],
                "cast_id": cast}
        status, body = tab.request(f"{url}/episodes/{ep}/edit", form)
        assert status == 200 and "a weak match" in body and 'name="confirmed"' in body
        assert read_edits(store, ep) is None and runner.started == []
        status, body = tab.request(f"{url}/episodes/{ep}/edit", {**form, "cast_id": "nobody"})
        assert status == 400 and "is not in the show's facebank" in body
        status, body = tab.request(f"{url}/episodes/{ep}/edit", {**form, "confirmed": "true"})
        assert status == 200 and [e["op"] for e in json.loads(read_edits(store, ep))[
            "edits"]] == ["link"] and runner.started == [ep]
        version = re.search(r'id="edits-version">([^<]+)<', body)[1]
        ids = sorted(i for i in made.identity_person if i != weak["identity_id"])[:3]
        status, body = tab.request(f"{url}/episodes/{ep}/edit", {
            "op": "merge", "version": version, "identities": ids})
        assert status == 200 and runner.started == [ep, ep]
        assert [e["op"] for e in json.loads(read_edits(store, ep))["edits"]] == [
            "link", "merge", "merge"]
        # two identities on screen together cannot be linked to one cast member at once
        from screenalytics_assets.review_app import data

        version = re.search(r'id="edits-version">([^<]+)<', body)[1]
        view = data.episode_view(store, instance, ep)
        a, b = next(p for c in view.cards for p in data.on_screen_together_pairs(
            store, view, [c.identity_id, *(x.identity_id for x in view.cards)]))
        status, body = tab.request(f"{url}/episodes/{ep}/edit", {
            "op": "link_selected", "version": version, "cast_id": cast, "confirmed": "true",
            "identities": [a.identity_id, b.identity_id]})
        assert status == 400 and "are on screen at the same time" in body
        assert len(json.loads(read_edits(store, ep))["edits"]) == 3 and len(runner.started) == 2
