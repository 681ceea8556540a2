"""The review app at season scale, in real headless Chromium: the page of a 20-minute episode
(hundreds of tracks, dozens of identities) loads in under a second; its timeline has an mm:ss
axis, zooms, pans, shows a face on hover and plays a segment in a large player, with keys for
the next and previous segment; weak suggestions ask for confirmation; merging or linking several
identities is one edit and one re-materialization; a season page in names with totals, chart and
CSV; thumbnails are revalidated with ETags.

The episodes are review artifacts written without the pipeline (tests/review_episode.py: the
real codecs, ``core.review`` and ``core.episode.screentime_report``, faces from
``../shared/faces``), so the app's runner here records the re-materializations it is asked for
instead of starting them; the runs themselves are tested on real footage in
tests/test_review_app.py. ``SCREENALYTICS_DOCS_IMG=docs/img`` also writes the screenshots of
docs/review.md (``scripts/review_screenshots.sh``).
"""

from __future__ import annotations

import json
import os
import time
import urllib.request

import pytest
from dagster import DagsterInstance

from resources.edits import clear_edits, read_edits
from resources.storage import LocalStore
from screenalytics_assets.partitions import register_episode
from screenalytics_assets.review_app import data
from screenalytics_assets.review_app.app import create_app
from tests.browser import CHROMEDRIVER, CHROMIUM, MISSING, chromium, wait_for
from tests.review_episode import RecordingRunner, write_review_episode, write_season
from tests.test_review_app import screenshot, submit, wait_rematerialized
from tests.test_review_pages import serving

# a 20-minute episode with its video is written once for the module (~6-15 s)
pytestmark = pytest.mark.slow
needs_chromium = pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER), reason=MISSING)
LONG, SHORT, SEASON = "long-s01e01", "long-s01e02", "long-s01"
NAMED = {1: "Jane Doe"}  # a reviewer's name for identity 1 of SHORT


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    root = tmp_path_factory.mktemp("review-long")
    store = LocalStore(root / "data")
    long = write_review_episode(store, LONG, minutes=20.0, video=root / "long.mp4")
    short = write_review_episode(store, SHORT, minutes=1.5, people=8, cast=5, seed=3,
                                 display_names=NAMED)
    rollup = write_season(store, SEASON, [LONG, SHORT])
    instance = DagsterInstance.ephemeral()
    for ep in (LONG, SHORT, "long-s02e01"):  # season 2: registered, nothing materialized
        register_episode(instance, ep)
    runner = RecordingRunner(root / "requests")
    assert data.warm_caches(store, instance) == 2  # as `review-ui` does when it starts
    with serving(create_app(store, instance, runner)) as url:
        yield {"url": url, "store": store, "runner": runner, "long": long, "short": short,
               "rollup": rollup, "instance": instance}


@pytest.fixture(scope="module")
def browser():
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.skip(MISSING)
    with chromium("1400,1000") as driver:
        yield driver


@pytest.fixture
def clean_short(app):
    """The short episode without edits before and after the test."""
    clear_edits(app["store"], SHORT)
    app["runner"].started.clear()
    yield
    clear_edits(app["store"], SHORT)


def js(driver, script: str, *args):
    return driver.execute_script(script, *args)


def load_ms(driver, url: str) -> dict:
    """Open ``url``; the browser's own navigation timing of it (ms from the request)."""
    driver.get(url)
    wait_for(lambda: js(driver, "return document.readyState") == "complete", 30)
    return js(driver, "const n = performance.getEntriesByType('navigation')[0];"
                      "return {response: n.responseEnd, dom: n.domContentLoadedEventEnd,"
                      " load: n.loadEventEnd, bytes: n.decodedBodySize}")


# ---------------------------------------------------------------------------- the long episode
@needs_chromium
def test_long_episode_page_is_fast_and_its_timeline_works(app, browser, tmp_path):
    from selenium.webdriver import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    d, page = browser, f"{app['url']}/episodes/{LONG}"
    first = load_ms(d, page)      # the browser's caches are cold
    # then the best of five (the machine is shared: one load may wait for the CPU)
    timing = min((load_ms(d, page) for _ in range(5)), key=lambda t: t["dom"])
    # under 1 s on this machine when it is not overloaded; with more runnable processes than
    # twice its cores (other tests, other work) every step is slower, and the bound is 3 s
    busy = os.getloadavg()[0] / (os.cpu_count() or 1)
    limit_ms = 1000 if busy < 2 else 3000
    n_tracks = len(d.find_elements(By.CSS_SELECTOR, "img[data-track]"))
    print(f"\n{LONG} ({app['long'].n_tracks} tracks, {len(app['long'].identity_person)} "
          f"identities, 20:00): first load {first['dom']:.0f} ms, then HTML in "
          f"{timing['response']:.0f} ms, DOMContentLoaded {timing['dom']:.0f} ms, load "
          f"{timing['load']:.0f} ms, {timing['bytes'] / 1024:.0f} KiB, {n_tracks} thumbnails "
          f"on the first page; load average {busy:.1f} per core, limit {limit_ms} ms")
    assert timing["dom"] < limit_ms, timing
    screenshot(d, tmp_path, "review_long_episode")
    assert len(d.find_elements(By.CSS_SELECTOR, "article.card")) == len(
        app["long"].identity_person)
    # the player is large enough to recognise someone
    assert js(d, "return document.getElementById('player').clientWidth") >= 640
    # an mm:ss axis over the whole episode, and the shot cuts
    ticks = [t.text for t in d.find_elements(By.CSS_SELECTOR, "#tl-axis .tick")]
    assert ticks[0] == "0:00" and all(t.count(":") == 1 for t in ticks) and ticks[-1] >= "18:00"
    assert len(d.find_elements(By.CSS_SELECTOR, ".shot-cut")) == len(app["long"].shots) - 1
    # zoom: the lanes get wider and the ticks finer; ctrl+wheel and keys do the same
    inner = "return document.getElementById('tl-inner').clientWidth"
    view = "return document.getElementById('tl-viewport')"
    w0 = js(d, inner)
    d.find_element(By.ID, "zoom-in").click()
    d.find_element(By.ID, "zoom-in").click()
    assert js(d, inner) == pytest.approx(4 * w0, rel=0.02)
    assert d.find_element(By.ID, "zoom-level").text == "4×"
    zoomed = [t.text for t in d.find_elements(By.CSS_SELECTOR, "#tl-axis .tick")]
    assert len(zoomed) > 2 * len(ticks)
    # pan: drag the axis to the left, the view moves to later times
    before = js(d, view + ".scrollLeft")
    axis = d.find_element(By.ID, "tl-axis")
    ActionChains(d).move_to_element(axis).click_and_hold().move_by_offset(-300, 0) \
        .release().perform()
    assert js(d, view + ".scrollLeft") == pytest.approx(before + 300, abs=10)
    # hover a segment: its face
    segs = d.find_elements(By.CSS_SELECTOR, "#tl-inner .segment")
    visible = [s for s in segs if js(d, "const r = arguments[0].getBoundingClientRect(),"
               " v = document.getElementById('tl-viewport').getBoundingClientRect();"
               "return r.left > v.left + 5 && r.right < v.right - 5", s)]
    seg = next(s for s in visible
               if 1.5 <= float(s.get_attribute("data-end")) - float(s.get_attribute("data-start"))
               <= 4.0)
    js(d, "arguments[0].scrollIntoView({block: 'center', inline: 'nearest'})", seg)
    ActionChains(d).move_to_element(seg).perform()
    preview = d.find_element(By.ID, "face-preview")
    assert wait_for(lambda: preview.is_displayed(), 5)
    img = preview.find_element(By.TAG_NAME, "img")
    assert img.get_attribute("src").endswith(
        f"/episodes/{LONG}/thumbs/{seg.get_attribute('data-track')}.jpg")
    assert wait_for(lambda: js(d, "return arguments[0].naturalWidth", img), 10) == 112
    screenshot(d, tmp_path, "review_timeline_zoomed")
    # click: the player plays the segment and stops at its end
    start, end = (float(seg.get_attribute(a)) for a in ("data-start", "data-end"))
    seg.click()
    assert wait_for(lambda: js(d, "const v = document.getElementById('player');"
                                  "return !v.paused && v.currentTime >= arguments[0] - 0.05",
                               start), 20), "the segment did not play"
    stopped = wait_for(lambda: js(d, "const v = document.getElementById('player');"
                                     "return v.paused && v.currentTime"), end - start + 10)
    assert end - 0.1 <= stopped <= end + 0.6, (start, end, stopped)
    assert "current" in seg.get_attribute("class")
    # keys: the next segment in time, then back
    order = sorted(segs, key=lambda s: float(s.get_attribute("data-start")))
    i = order.index(seg)
    d.find_element(By.TAG_NAME, "body").send_keys(Keys.ARROW_RIGHT)
    assert wait_for(lambda: "current" in order[i + 1].get_attribute("class"), 5)
    d.find_element(By.TAG_NAME, "body").send_keys("p")
    assert wait_for(lambda: "current" in order[i].get_attribute("class"), 5)
    d.find_element(By.TAG_NAME, "body").send_keys("0")
    assert js(d, inner) == pytest.approx(w0, rel=0.02)
    # a track page of the long episode: its faces and a full-size player
    tid = int(d.find_element(By.CSS_SELECTOR, "img[data-track]").get_attribute("data-track"))
    d.get(f"{app['url']}/episodes/{LONG}/tracks/{tid}")
    assert wait_for(lambda: js(d, "return [...document.querySelectorAll('.faces img')]"
                                  ".every(i => i.complete && i.naturalWidth > 0) || null"), 10)
    assert d.find_element(By.CSS_SELECTOR, "#move-target option:checked").get_attribute(
        "value") == ""  # nothing preselected
    screenshot(d, tmp_path, "review_long_track")


# ---------------------------------------------------------------------------- decisions
@needs_chromium
def test_a_weak_link_needs_confirmation_and_bulk_edits_are_one_run(app, browser, clean_short):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    d, store, runner = browser, app["store"], app["runner"]
    page = f"{app['url']}/episodes/{SHORT}"
    d.get(page)
    # every link says how it was made and its similarity; weak suggestions are marked
    links = d.find_elements(By.CSS_SELECTOR, "p.link .source")
    assert links and {x.text for x in links} == {"automatic"}
    assert all("similarity" in x.find_element(By.XPATH, "..").text for x in links)
    weak = d.find_elements(By.CSS_SELECTOR, "button.suggestion.weak")
    assert weak and all(float(b.get_attribute("data-score")) < 0.35 for b in weak)
    assert all("WEAK" in b.text.upper() for b in weak)
    strong = d.find_elements(By.CSS_SELECTOR, "button.suggestion:not(.weak)")
    assert all(float(b.get_attribute("data-score")) >= 0.35 for b in strong)
    # a weak suggestion asks first; nothing is written until confirmed
    button = next(b for b in weak if b.is_enabled())
    ident = int(button.find_element(By.XPATH, "./ancestor::article").get_attribute(
        "data-identity"))
    cast = button.get_attribute("data-cast")
    submit(d, button)
    assert "a weak match" in d.find_element(By.ID, "confirm").text
    assert read_edits(store, SHORT) is None and runner.started == []
    submit(d, d.find_element(By.ID, "confirm-button"))
    wait_rematerialized(d, 30)  # the page follows the run to its end, then reloads
    (edit,) = json.loads(read_edits(store, SHORT))["edits"]
    assert edit["op"] == "link" and edit["cast_id"] == cast
    assert runner.started == [SHORT]
    card = d.find_element(By.ID, f"identity-{ident}")
    assert card.find_element(By.CSS_SELECTOR, ".source").text == "reviewed"
    assert card.find_element(By.CSS_SELECTOR, ".cast").text == cast
    # merge three identities at once: one write of two merges, one run
    ids = [int(c.get_attribute("data-identity"))
           for c in d.find_elements(By.CSS_SELECTOR, "article.card")]
    pick = [i for i in ids if i != ident][:3]
    for i in pick:
        d.find_element(By.CSS_SELECTOR, f"#identity-{i} input.pick").click()
    submit(d, d.find_element(By.ID, "merge-button"))
    wait_rematerialized(d, 30)
    edits = json.loads(read_edits(store, SHORT))["edits"]
    assert [e["op"] for e in edits] == ["link", "merge", "merge"]
    assert runner.started == [SHORT, SHORT]
    assert len(d.find_elements(By.CSS_SELECTOR, "article.card")) == len(ids) - 2
    # link two identities at once (weak for both: confirmed once): one write, one run
    rest = [int(c.get_attribute("data-identity"))
            for c in d.find_elements(By.CSS_SELECTOR, "article.card")]
    view = data.episode_view(store, app["instance"], SHORT)
    two = next([a, b] for a in rest for b in rest if ident not in (a, b) and a < b
               and not data.on_screen_together_pairs(store, view, [a, b]))
    for i in two:
        d.find_element(By.CSS_SELECTOR, f"#identity-{i} input.pick").click()
    Select(d.find_element(By.ID, "bulk-cast")).select_by_value("person01")
    submit(d, d.find_element(By.ID, "link-selected-button"))
    confirm = d.find_elements(By.ID, "confirm-button")
    if confirm:  # unless both were already that person's best match
        assert len(d.find_elements(By.CSS_SELECTOR, ".weak-identity")) >= 1
        submit(d, confirm[0])
    wait_rematerialized(d, 30)
    edits = json.loads(read_edits(store, SHORT))["edits"]
    assert [e["op"] for e in edits][3:] == ["link", "link"]
    assert {e["cast_id"] for e in edits[3:]} == {"person01"}
    assert runner.started == [SHORT] * 3


# ---------------------------------------------------------------------------- the season
@needs_chromium
def test_season_page_in_names_with_totals_chart_and_csv(app, browser, tmp_path):
    from selenium.webdriver.common.by import By

    d, url = browser, app["url"]
    d.get(url + "/")
    links = {a.text: a.get_attribute("href") for a in
             d.find_elements(By.CSS_SELECTOR, "#seasons a")}
    assert SEASON in links and "long-s02" in links
    d.get(links[SEASON])
    rows = d.find_elements(By.CSS_SELECTOR, "#season-table tbody tr")
    rollup = app["rollup"]
    assert len(rows) == len(rollup["people"])
    labels = [r.find_element(By.CSS_SELECTOR, ".person").text for r in rows]
    assert f"{NAMED[1]} ({SHORT})" in labels or any(NAMED[1] in x for x in labels)
    assert not any(":id_" in x for x in labels)  # names, not roll-up keys
    for r, p in zip(rows, rollup["people"]):
        cells = [c.text for c in r.find_elements(By.CSS_SELECTOR, "td.num")]
        assert float(cells[-1]) == pytest.approx(p["total_s"], abs=0.05)
        assert sum(map(float, cells[:-1])) == pytest.approx(p["total_s"], abs=0.1)
    assert len(d.find_elements(By.CSS_SELECTOR, "#season-chart .bar-row")) == len(rows)
    screenshot(d, tmp_path, "review_season")
    with urllib.request.urlopen(d.find_element(By.ID, "csv-link").get_attribute("href")) as r:
        assert "attachment" in r.headers["Content-Disposition"]
        lines = r.read().decode().splitlines()
    assert lines[0] == f"person,cast_id,{LONG},{SHORT},total_s"
    assert len(lines) == 1 + len(rollup["people"]) and lines[1].split(",")[0] == labels[0]
    # a season without a roll-up says how to build one
    d.get(links["long-s02"])
    text = d.find_element(By.ID, "no-rollup").text
    assert "screenalytics backfill --show long --season 2" in text and "season_screentime" in text


# ---------------------------------------------------------------------------- caching
def test_thumbnails_and_faces_are_revalidated_with_etags(app):
    for path in (f"/episodes/{LONG}/thumbs/3.jpg", f"/episodes/{LONG}/faces/3.jpg"):
        with urllib.request.urlopen(app["url"] + path) as r:
            etag, body = r.headers["ETag"], r.read()
            assert r.headers["Content-Type"] == "image/jpeg" and body[:2] == b"\xff\xd8"
            assert "max-age" in r.headers["Cache-Control"]
        req = urllib.request.Request(app["url"] + path, headers={"If-None-Match": etag})
        with pytest.raises(urllib.error.HTTPError) as exc:
            urllib.request.urlopen(req)
        assert exc.value.code == 304
        other = urllib.request.Request(app["url"] + path, headers={"If-None-Match": '"x"'})
        with urllib.request.urlopen(other) as r:
            assert r.status == 200 and r.read() == body
    t = time.perf_counter()
    with urllib.request.urlopen(f"{app['url']}/episodes/{LONG}") as r:
        r.read()
    print(f"\n{LONG}: page HTML served in {1000 * (time.perf_counter() - t):.0f} ms")
