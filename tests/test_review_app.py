"""The review web app (`screenalytics review-ui`) in real headless Chromium, over a materialized
real episode (the Hamilton clip with the shared facebank), on local storage and on S3 (moto
server on loopback). Edits made on the page re-materialize through real Dagster runs.

Screenshots go to each test's temp folder; with ``SCREENALYTICS_DOCS_IMG=DIR`` they are also
written there (how ``docs/img/`` was made).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
from dagster import AssetKey, DagsterInstance, RunsFilter

from resources.edits import add_edit, clear_edits, read_edits
from resources.facebank import add_folder
from screenalytics_assets.assets.cast import ensure_edits_observed, record_edits_version
from screenalytics_assets.core.review import edits_version
from screenalytics_assets.definitions import EPISODE_JOB, FACEBANK_JOB, build_definitions
from screenalytics_assets.partitions import EPISODES_PARTITION, register_episode
from screenalytics_assets.review_app.rematerialize import REQUEST_TAG
from screenalytics_assets.settings import load_settings
from tests.conftest import FACEBANK, HAMILTON, REPO
from tests.s3_server import FAKE_AWS_ENV, free_port, moto_server, new_bucket, s3_client
from tests.browser import CHROMEDRIVER, CHROMIUM, MISSING, chromium, stop_group
from tests.browser import wait_for as _wait
from tests.test_review_pages import get

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER),
                                                   reason=MISSING)]

REMAT_TIMEOUT = 300  # s, for one re-materialization on a busy machine


@dataclass
class App:
    url: str
    store: object
    instance: DagsterInstance
    ep_id: str
    proc: subprocess.Popen


def start_app(env: dict, log: Path) -> tuple[str, subprocess.Popen]:
    """``screenalytics review-ui`` on a free loopback port, in its own process group."""
    port = free_port()
    out = open(log, "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "screenalytics_assets.cli", "review-ui", "--port", str(port)],
        cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            with urllib.request.urlopen(url + "/", timeout=5):
                return url, proc
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                stop_app(proc)
                pytest.fail("review-ui did not start:\n" + log.read_text()[-3000:])
            time.sleep(0.5)


def stop_app(proc: subprocess.Popen) -> None:
    """SIGTERM the app (it lets its re-materializations finish), SIGKILL after 60 s."""
    stop_group(proc, 60)


def app_env(**extra) -> dict:
    env = {**os.environ, **extra,
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    return env


@pytest.fixture(scope="module")
def local_app(hamilton_run, tmp_path_factory):
    """The app over the session's Hamilton run (local storage). Afterwards the edits are
    cleared and cast_links/screentime re-materialized, so the run reads as before."""
    run = hamilton_run
    assert read_edits(run.store, run.ep_id) is None
    home = run.root / "dagster_home"
    env = app_env(DAGSTER_HOME=str(home), SCREENALYTICS_DATA_ROOT=str(run.store.root),
                  STORAGE_BACKEND="local")
    url, proc = start_app(env, tmp_path_factory.mktemp("review-app") / "app.log")
    try:
        yield App(url, run.store, run.instance, run.ep_id, proc)
    finally:
        stop_app(proc)
        if read_edits(run.store, run.ep_id) is not None:
            clear_edits(run.store, run.ep_id)
            record_edits_version(run.instance, run.ep_id, None)
            assert run.materialize("cast_links", "screentime").success


@pytest.fixture
def browser():
    with chromium("1280,900") as driver:
        yield driver


def screenshot(driver, tmp_path: Path, name: str, docs_copy: bool = True) -> Path:
    path = tmp_path / f"{name}.png"
    driver.save_screenshot(str(path))
    docs = os.environ.get("SCREENALYTICS_DOCS_IMG")
    if docs and docs_copy:  # a 128-colour copy: a third of the size, still legible
        from PIL import Image

        Path(docs).mkdir(parents=True, exist_ok=True)
        Image.open(path).convert("RGB").quantize(colors=128).save(
            Path(docs) / path.name, optimize=True)
    return path


# ---------------------------------------------------------------------------- page helpers
def cards(driver) -> dict[int, object]:
    from selenium.webdriver.common.by import By

    return {int(c.get_attribute("data-identity")): c
            for c in driver.find_elements(By.CSS_SELECTOR, "article.card")}


def card_seconds(driver, identity_id: int) -> float:
    from selenium.webdriver.common.by import By

    el = driver.find_element(By.CSS_SELECTOR, f"#identity-{identity_id} .seconds")
    return float(el.get_attribute("data-seconds"))


def assert_thumbnails_load(driver) -> int:
    """Every track thumbnail on the page shows a decoded image; returns how many."""
    from selenium.webdriver.common.by import By

    imgs = driver.find_elements(By.CSS_SELECTOR, "img[data-track]")
    assert imgs, "no track thumbnail on the page"
    for img in imgs:  # lazy images load once scrolled into view
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", img)
        assert _wait(lambda img=img: driver.execute_script(
            "return arguments[0].complete && arguments[0].naturalWidth", img), 30), \
            f"thumbnail {img.get_attribute('src')} did not load"
    driver.execute_script("window.scrollTo(0, 0)")
    return len(imgs)


def submit(driver, button) -> None:
    """Click a button that posts a form and wait until the browser has left the page (a click
    returns before the navigation, and the old page's messages must not be read as the new)."""
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    old = driver.find_element(By.TAG_NAME, "html")
    button.click()

    def left(_) -> bool:
        # selenium's staleness_of, but chromedriver may also answer a node of the old document
        # with "Node with given id does not belong to the document" rather than "stale"
        try:
            old.is_enabled()
            return False
        except WebDriverException:
            return True

    WebDriverWait(driver, 60).until(left)


def wait_rematerialized(driver, timeout: float = REMAT_TIMEOUT) -> None:
    """Wait for the progress panel to hand over to the 'up to date' message."""
    from selenium.webdriver.common.by import By

    found = _wait(lambda: driver.find_elements(By.ID, "done")
                  or driver.find_elements(By.ID, "failed"), timeout)
    assert found and found[0].get_attribute("id") == "done", (
        "re-materialization did not finish: "
        + driver.find_element(By.TAG_NAME, "body").text[:2000])


def merge_and_link(app: App, driver, tmp_path: Path, read_json, docs_copy: bool = True) -> None:
    """The main review flow: merge two unlinked identities by ticking their cards, link the
    result to a cast member by clicking a suggestion; each edit re-materializes through Dagster
    and the page and screentime.json then show the new seconds."""
    from selenium.webdriver.common.by import By

    driver.get(f"{app.url}/episodes/{app.ep_id}")
    _wait(lambda: cards(driver), 30)
    n = assert_thumbnails_load(driver)
    screenshot(driver, tmp_path, "review_episode", docs_copy)
    view = read_json("cast_links.json")
    unlinked = [i for i in view["identities"] if not i["cast_id"]]
    pick = (unlinked if len(unlinked) >= 2 else view["identities"])[:2]
    a, b = pick[0]["identity_id"], pick[1]["identity_id"]
    tracks = sorted(pick[0]["track_ids"] + pick[1]["track_ids"])
    for ident in (a, b):
        driver.find_element(By.CSS_SELECTOR, f"#identity-{ident} input.pick").click()
    submit(driver, driver.find_element(By.ID, "merge-button"))
    assert _wait(lambda: driver.find_elements(By.ID, "progress"), 30), "no progress shown"
    screenshot(driver, tmp_path, "review_progress", docs_copy)
    wait_rematerialized(driver)
    merged = [i for i, c in cards(driver).items()
              if set(tracks) <= {int(x.get_attribute("data-track")) for x in
                                 c.find_elements(By.CSS_SELECTOR, "img[data-track]")}]
    assert len(merged) == 1, "no card holds the merged tracks"
    into = merged[0]
    assert len(cards(driver)) == len(view["identities"]) - 1
    # link it by clicking a suggestion
    button = next(x for x in driver.find_elements(
        By.CSS_SELECTOR, f"#identity-{into} button.suggestion") if x.is_enabled())
    cast = button.get_attribute("data-cast")
    submit(driver, button)
    confirm = driver.find_elements(By.ID, "confirm-button")
    if confirm:  # a suggestion under cast_link_thresh is linked only when confirmed
        submit(driver, confirm[0])
    wait_rematerialized(driver)
    assert driver.find_element(By.CSS_SELECTOR, f"#identity-{into} .cast").text == cast
    report = read_json("screentime.json")
    track_objs = {t["track_id"]: t for t in app_tracks(read_json)}
    # linking is many-to-one: the cast member's time is the union of every identity linked to
    # it (the merged one, and any other not on screen at the same time)
    linked = [i for i in read_json("cast_links.json")["identities"] if i["cast_id"] == cast]
    assert into in {i["identity_id"] for i in linked}
    expected = cast_seconds_of(track_objs, [i["track_ids"] for i in linked],
                               report["duration_s"], load_settings()["stitch_gap_s"])
    assert report["cast"][cast] == pytest.approx(expected, abs=2e-3)
    row = next(p for p in report["people"] if p["identity_id"] == into)
    assert row["cast_id"] == cast and row["n_tracks"] == len(tracks)
    assert card_seconds(driver, into) == pytest.approx(row["seconds"], abs=1e-3)
    assert f"{row['seconds']:.2f} s" in driver.find_element(
        By.CSS_SELECTOR, f"#identity-{into} .seconds").text
    assert assert_thumbnails_load(driver) == n
    screenshot(driver, tmp_path, "review_after_merge_and_link", docs_copy)
    # the runs were launched on the instance (what the Dagster UI lists)
    runs = app.instance.get_runs(RunsFilter(tags={"screenalytics/source": "review-ui"}))
    assert {r.job_name for r in runs} >= {"episode_job", "season_job"}
    assert all(r.tags.get(REQUEST_TAG) for r in runs)
    # and the season roll-up they made shows the person's seconds as a number
    md = app.instance.get_latest_materialization_event(
        AssetKey("season_screentime")).asset_materialization.metadata
    assert md[f"seconds: {cast}"].value == pytest.approx(report["cast"][cast], abs=2e-3)


def app_tracks(read_json) -> list[dict]:
    return read_json("tracks.jsonl")


def cast_seconds_of(tracks: dict[int, dict], identities: list[list[int]], duration: float,
                    max_gap_s: float) -> float:
    """A cast member's seconds from tracks.jsonl (frame ts + dur), by the documented rule: per
    identity (its track ids) and shot, the union of its tracks' frames, a gap of at most
    ``max_gap_s`` counted as on screen (``stitch_gap_s``); then the union over the identities."""
    from screenalytics_assets.core.screentime import fill_gaps, total_seconds, union_intervals

    spans: list[tuple[float, float]] = []
    for track_ids in identities:
        by_shot: dict[int, list[tuple[float, float]]] = {}
        for t in track_ids:
            by_shot.setdefault(tracks[t]["shot_id"], []).extend(
                (f["ts"], f["ts"] + f["dur"]) for f in tracks[t]["frames"])
        for frames in by_shot.values():
            spans.extend(fill_gaps(union_intervals(frames, duration), max_gap_s))
    return total_seconds(union_intervals(spans, duration))


def reader(store, ep_id):
    def read(name: str):
        data = store.read_file(ep_id, name)
        if name.endswith(".jsonl"):
            return [json.loads(x) for x in data.decode().splitlines() if x.strip()]
        return json.loads(data)
    return read


# ---------------------------------------------------------------------------- local storage
def test_merge_link_and_timeline_on_local_storage(local_app, browser, tmp_path):
    from selenium.webdriver.common.by import By

    merge_and_link(local_app, browser, tmp_path, reader(local_app.store, local_app.ep_id))
    # the timeline: a click on a segment plays the episode from its start
    seg = browser.find_elements(By.CSS_SELECTOR, "button.segment")[-1]
    start = float(seg.get_attribute("data-start"))
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", seg)
    seg.click()
    played = _wait(lambda: browser.execute_script(
        "const v = document.getElementById('player');"
        "return v.readyState >= 1 && v.currentTime >= arguments[0] - 0.05", start), 20)
    assert played, "clicking a segment did not seek the video to it"
    # the episode list shows the episode as materialized, and the season table
    browser.get(local_app.url + "/")
    row = browser.find_element(By.CSS_SELECTOR, f"tr[data-ep='{local_app.ep_id}']")
    assert "materialized" in row.text
    assert browser.find_elements(By.CSS_SELECTOR, "table.season")
    screenshot(browser, tmp_path, "review_episodes")


def test_stale_tab_is_refused_and_nothing_is_lost(local_app, browser, tmp_path):
    from selenium.webdriver.common.by import By

    app = local_app
    page = f"{app.url}/episodes/{app.ep_id}"
    browser.get(page)
    _wait(lambda: cards(browser), 30)
    first = browser.window_handles[0]
    browser.switch_to.new_window("tab")
    browser.get(page)
    _wait(lambda: cards(browser), 30)
    ids = sorted(cards(browser))

    def rename(identity: int, name: str) -> None:
        browser.find_element(By.CSS_SELECTOR, f"#identity-{identity} details summary").click()
        box = browser.find_element(By.CSS_SELECTOR, f"#identity-{identity} input[name=name]")
        box.clear()
        box.send_keys(name)
        submit(browser, browser.find_element(By.CSS_SELECTOR,
                                             f"#identity-{identity} .rename-button"))

    rename(ids[0], "Tab Two")  # the second tab edits first
    assert _wait(lambda: browser.find_elements(By.ID, "progress"), 30)
    before = read_edits(app.store, app.ep_id)
    browser.switch_to.window(first)  # the first tab still shows the old version
    rename(ids[-1], "Tab One")
    body = browser.find_element(By.TAG_NAME, "body").text
    assert "This page is out of date" in body and "Reload the page" in body
    assert "Traceback" not in body
    screenshot(browser, tmp_path, "review_stale_refused")
    assert read_edits(app.store, app.ep_id) == before  # the refused edit wrote nothing
    names = [e.get("name") for e in json.loads(before)["edits"]]
    assert "Tab Two" in names and "Tab One" not in names
    # the command line edits while a tab is open: the tab is stale again
    browser.get(page)
    _wait(lambda: cards(browser), 30)
    add_edit(app.store, app.ep_id, "rename", identity=ids[1], name="From CLI")
    rename(ids[-1], "Tab One")
    assert "This page is out of date" in browser.find_element(By.TAG_NAME, "body").text
    # reload and redo: every edit is there
    browser.get(page)
    _wait(lambda: cards(browser), 30)
    rename(ids[-1], "Tab One")
    wait_rematerialized(browser)
    names = [e.get("name") for e in json.loads(read_edits(app.store, app.ep_id))["edits"]]
    assert {"Tab Two", "From CLI", "Tab One"} <= set(names)
    labels = {c.find_element(By.CSS_SELECTOR, ".label").text for c in cards(browser).values()}
    assert {"Tab Two", "From CLI", "Tab One"} <= labels
    report = reader(app.store, app.ep_id)("screentime.json")
    assert {"Tab Two", "From CLI", "Tab One"} <= {p["name"] for p in report["people"]}
    # undo takes back exactly the last edit
    n = len(json.loads(read_edits(app.store, app.ep_id))["edits"])
    submit(browser, browser.find_element(By.ID, "undo-button"))
    assert _wait(lambda: browser.find_elements(By.ID, "progress"), 30)
    assert len(json.loads(read_edits(app.store, app.ep_id))["edits"]) == n - 1
    wait_rematerialized(browser)


def test_bad_input_gets_a_clear_message(local_app, browser, tmp_path):
    from selenium.webdriver.common.by import By

    app = local_app
    cases = []
    cases.append((get(f"{app.url}/episodes/Not_An_Episode"), 400, "invalid ep_id"))
    cases.append((get(f"{app.url}/episodes/hamilton-s01e09"), 404, "is not registered"))
    app.instance.add_dynamic_partitions(EPISODES_PARTITION, ["hamilton-s01e08"])
    try:
        cases.append((get(f"{app.url}/episodes/hamilton-s01e08"), 409,
                       "has not been materialized yet"))
    finally:
        app.instance.delete_dynamic_partition(EPISODES_PARTITION, "hamilton-s01e08")
    version = edits_version(read_edits(app.store, app.ep_id))
    ident = reader(app.store, app.ep_id)("cast_links.json")["identities"][0]["identity_id"]
    cases.append((get(f"{app.url}/episodes/{app.ep_id}/edit",
                      {"op": "link", "version": version, "identity": ident,
                       "cast_id": "nobody-here"}), 400, "is not in the show's facebank"))
    cases.append((get(f"{app.url}/episodes/{app.ep_id}/tracks/9999"), 404, "has no track 9999"))
    for (status, body), want_status, want in cases:
        assert status == want_status and want in body, (status, body[:500])
        assert "Traceback" not in body and 'File "' not in body
    assert read_edits(app.store, app.ep_id) is None or edits_version(
        read_edits(app.store, app.ep_id)) == version  # refused edits wrote nothing
    # a deleted track, in the browser: delete it on its page, then open it again
    track = reader(app.store, app.ep_id)("cast_links.json")["identities"][0]["track_ids"][0]
    browser.get(f"{app.url}/episodes/{app.ep_id}/tracks/{track}")
    assert _wait(lambda: browser.find_elements(By.CSS_SELECTOR, ".faces img"), 30)
    assert _wait(lambda: browser.execute_script(
        "return [...document.querySelectorAll('.faces img')].every(i => i.complete && "
        "i.naturalWidth > 0) || null"), 20), "a sampled face did not load"
    screenshot(browser, tmp_path, "review_track")
    submit(browser, browser.find_element(By.ID, "delete-button"))
    assert _wait(lambda: browser.find_elements(By.ID, "progress"), 30)
    browser.get(f"{app.url}/episodes/{app.ep_id}/tracks/{track}")
    body = browser.find_element(By.TAG_NAME, "body").text
    assert "was deleted by a review edit" in body and "Traceback" not in body
    screenshot(browser, tmp_path, "review_deleted_track", docs_copy=False)
    browser.get(f"{app.url}/episodes/{app.ep_id}")
    wait_rematerialized_or_idle(app)


def wait_rematerialized_or_idle(app: App, timeout: float = REMAT_TIMEOUT) -> None:
    """Wait until no run of the app is in flight (so the module's clean-up starts from rest)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _, body = get(f"{app.url}/")
        if "status-running" not in body:
            return
        time.sleep(1)


# ---------------------------------------------------------------------------- S3
@pytest.fixture(scope="module")
def s3_app(tmp_path_factory):
    """The Hamilton clip uploaded to a bucket on a moto server, materialized there (fast
    profile) with the shared facebank, and the app over it."""
    root = tmp_path_factory.mktemp("review-s3")
    home = root / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    ep_id = "hamilton-s02e01"
    with pytest.MonkeyPatch.context() as mp, moto_server() as endpoint:
        for k, v in FAKE_AWS_ENV.items():
            mp.setenv(k, v)
        bucket = new_bucket(endpoint)
        env = dict(STORAGE_BACKEND="s3", SCREENALYTICS_S3_BUCKET=bucket,
                   SCREENALYTICS_S3_ENDPOINT_URL=endpoint,
                   SCREENALYTICS_DATA_ROOT=str(root / "data"), SCREENALYTICS_PROFILE="fast",
                   DAGSTER_HOME=str(home))
        for k, v in env.items():
            mp.setenv(k, v)
        instance = DagsterInstance.get()
        defs = build_definitions(load_settings(profile="fast"))
        store = defs.resources["storage"].store()
        s3_client(endpoint).upload_file(str(HAMILTON), bucket, f"videos/{ep_id}/episode.mp4")
        register_episode(instance, ep_id)
        ensure_edits_observed(instance, store, ep_id)
        add_folder(store, "hamilton", FACEBANK)
        assert defs.resolve_job_def(FACEBANK_JOB).execute_in_process(
            instance=instance, partition_key="hamilton").success
        assert defs.resolve_job_def(EPISODE_JOB).execute_in_process(
            instance=instance, partition_key=ep_id).success
        url, proc = start_app(app_env(**FAKE_AWS_ENV, **env), root / "app.log")
        try:
            yield App(url, store, instance, ep_id, proc)
        finally:
            stop_app(proc)


def test_merge_and_link_on_s3(s3_app, browser, tmp_path):
    from selenium.webdriver.common.by import By

    browser.get(f"{s3_app.url}/episodes/{s3_app.ep_id}")
    _wait(lambda: cards(browser), 30)
    srcs = [i.get_attribute("src") for i in browser.find_elements(By.CSS_SELECTOR,
                                                                  "img[data-track]")]
    assert srcs and all("X-Amz-Signature=" in s or "Signature=" in s for s in srcs), srcs[:2]
    video = browser.find_element(By.ID, "player").get_attribute("src")
    assert "Signature=" in video and "videos/" in video
    merge_and_link(s3_app, browser, tmp_path, reader(s3_app.store, s3_app.ep_id),
                   docs_copy=False)
    season = s3_app.store.get(s3_app.store.season_key("hamilton", 2, "season_screentime.json"))
    assert s3_app.ep_id in json.loads(season)["episodes"]
