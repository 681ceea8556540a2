"""The review app on a shared network (docs/security.md): a non-loopback address needs a token,
a token means a login, every post needs its session's CSRF token, and hostile path parts in every
route are answered 400/404 without reading outside the episode's artifacts. Over HTTP against
the real app (uvicorn on loopback) on tiny artifacts."""

from __future__ import annotations

import http.client
import json
import urllib.parse

import pytest

from resources.edits import read_edits
from screenalytics_assets.cli import main as cli_main
from screenalytics_assets.core.review import NO_EDITS_VERSION
from screenalytics_assets.review_app.access import (
    AccessConfigError,
    check_bind,
    credential_from_env,
    is_loopback,
)
from screenalytics_assets.review_app.app import create_app
from screenalytics_assets.review_app.runs import Runner
from tests.browser import CHROMEDRIVER, CHROMIUM, MISSING, chromium, wait_for
from tests.review_episode import RecordingRunner
from tests.test_review_edits import EP, store  # noqa: F401  (the tiny episode fixture)
from tests.test_review_pages import Browser, serving, tiny_instance

TOKEN = "correct-horse-battery-staple-42"
MARKER = "SECRET-OUTSIDE-THE-EPISODE"


def raw(url: str, path: str, method: str = "GET", body: str | None = None,
        headers: dict | None = None) -> tuple[int, dict, str]:
    """One request with ``path`` sent exactly as given (no client-side normalisation of
    ``..`` or percent-escapes)."""
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        hdrs = dict(headers or {})
        if body is not None:
            hdrs.setdefault("Content-Type", "application/x-www-form-urlencoded")
        conn.request(method, path, body=body, headers=hdrs)
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read().decode(
            errors="replace")
    finally:
        conn.close()


@pytest.fixture
def served(store, tmp_path):  # noqa: F811
    """The app without a token (loopback only) over the tiny episode, with a video, and a
    secret file beside the data root and in the episode's own manifest folder's parent."""
    store.path(store.video_key(EP)).parent.mkdir(parents=True, exist_ok=True)
    store.path(store.video_key(EP)).write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 64)
    (store.root.parent / "secret.txt").write_text(MARKER)
    (store.root / "secret.txt").write_text(MARKER)
    (store.root / "manifests" / "secret.txt").write_text(MARKER)
    with serving(create_app(store, tiny_instance(),
                            RecordingRunner(tmp_path / "requests"))) as url:
        yield url


@pytest.fixture
def served_with_token(store, tmp_path):  # noqa: F811
    with serving(create_app(store, tiny_instance(), RecordingRunner(tmp_path / "requests"),
                            token=TOKEN)) as url:
        yield url


# ----------------------------------------------------------------------------- binding
def test_a_shared_address_needs_a_token(tmp_path, monkeypatch, capsys):
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not any(map(is_loopback, ["0.0.0.0", "::", "192.168.1.5", "example.org", ""]))
    check_bind("127.0.0.1", None)
    check_bind("0.0.0.0", TOKEN)
    with pytest.raises(AccessConfigError, match="SCREENALYTICS_REVIEW_TOKEN"):
        check_bind("0.0.0.0", None)
    assert credential_from_env({}) is None
    assert credential_from_env({"SCREENALYTICS_REVIEW_TOKEN": TOKEN}) == TOKEN
    with pytest.raises(AccessConfigError, match="at least 16"):
        credential_from_env({"SCREENALYTICS_REVIEW_TOKEN": "short"})
    path = tmp_path / "token"
    path.write_text(TOKEN + "\n")
    assert credential_from_env({"SCREENALYTICS_REVIEW_TOKEN_FILE": str(path)}) == TOKEN
    with pytest.raises(AccessConfigError, match="cannot read"):
        credential_from_env({"SCREENALYTICS_REVIEW_TOKEN_FILE": str(tmp_path / "none")})
    path.write_text("")
    with pytest.raises(AccessConfigError, match="is empty"):
        credential_from_env({"SCREENALYTICS_REVIEW_TOKEN_FILE": str(path)})
    # the command refuses before it prints or starts anything: one error line, exit 2
    monkeypatch.delenv("SCREENALYTICS_REVIEW_TOKEN", raising=False)
    monkeypatch.delenv("SCREENALYTICS_REVIEW_TOKEN_FILE", raising=False)
    assert cli_main(["review-ui", "--host", "0.0.0.0", "--port", "1",
                     "--data-root", str(tmp_path / "data")]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("error: --host 0.0.0.0 is not a loopback address")
    assert err.count("\n") == 1 and "docs/security.md" in err


# ----------------------------------------------------------------------------- CSRF
def test_every_post_needs_the_session_csrf_token(served, store):  # noqa: F811
    edit = f"/episodes/{EP}/edit"
    form = {"op": "rename", "version": NO_EDITS_VERSION, "identity": 0, "name": "Mallory"}
    tab = Browser()
    status, _ = tab.request(served + f"/episodes/{EP}")
    assert status == 200 and tab.csrf
    # another site's form: no cookie, no token (what a cross-site post carries at most)
    for path in (edit, f"/episodes/{EP}/undo", f"/episodes/{EP}/rematerialize", "/login",
                 "/logout"):
        status, _, body = raw(served, path, "POST", urllib.parse.urlencode(form))
        assert status == 403 and "reload the page" in body, (path, status)
    # the session's cookie but another session's token, and a token without the cookie
    other = Browser()
    other.request(served + "/")
    assert other.csrf != tab.csrf
    status, _ = tab.request(served + edit, {**form, "csrf_token": other.csrf})
    assert status == 403
    status, _, _ = raw(served, edit, "POST", urllib.parse.urlencode(
        {**form, "csrf_token": tab.csrf}))
    assert status == 403
    # the right cookie and token, from a page of another origin
    status, body = tab.request(served + edit, form, headers={"Origin": "http://evil.example"})
    assert status == 403 and "evil.example" in body
    assert read_edits(store, EP) is None  # nothing refused was written
    # the app's own form (and htmx's header) go through
    status, body = tab.request(served + edit, form, headers={"Origin": served})
    assert status == 200 and "Mallory" in body, body[-500:]
    assert b"Mallory" in read_edits(store, EP)


def test_a_page_for_another_host_name_is_refused(served):
    # a DNS name rebound to 127.0.0.1 reaches the port, but not the app
    status, _, body = raw(served, "/", headers={"Host": "attacker.example:80"})
    assert status == 400 and "Host not allowed" in body
    status, _, _ = raw(served, "/", headers={"Host": "localhost"})
    assert status == 200


# ----------------------------------------------------------------------------- login
def test_with_a_token_every_route_needs_a_login(served_with_token, store):  # noqa: F811
    url = served_with_token
    for path in ("/", f"/episodes/{EP}", f"/episodes/{EP}/video", f"/episodes/{EP}/tracks/0",
                 f"/episodes/{EP}/thumbs/0.jpg", f"/episodes/{EP}/faces/0.jpg"):
        status, headers, _ = raw(url, path)
        assert status == 401 and headers["www-authenticate"].startswith("Bearer"), path
    status, headers, _ = raw(url, f"/episodes/{EP}?x=1", headers={"Accept": "text/html"})
    assert status == 303 and headers["location"] == "/login?next=%2Fepisodes%2F" + EP + "%3Fx%3D1"
    for public in ("/login", "/static/app.css", "/favicon.ico"):
        assert raw(url, public)[0] == 200, public
    assert raw(url, "/", headers={"Authorization": "Bearer wrong-token-of-some-length"})[0] == 401
    assert raw(url, "/", headers={"Authorization": f"Bearer {TOKEN}"})[0] == 200
    # a script edits with the bearer token (no CSRF token: browsers never add that header)
    status, _, _ = raw(url, f"/episodes/{EP}/edit", "POST", urllib.parse.urlencode(
        {"op": "rename", "version": NO_EDITS_VERSION, "identity": 0, "name": "Bot"}),
        headers={"Authorization": f"Bearer {TOKEN}"})
    assert status == 303 and b"Bot" in read_edits(store, EP)
    # a browser logs in with the form; a wrong token is refused, `next` never leaves the app
    tab = Browser()
    status, body = tab.request(url + "/login?next=//evil.example/")
    assert status == 200 and 'name="token"' in body
    status, body = tab.request(url + "/login", {"token": "not-the-token-at-all",
                                                "next": "/"})
    assert status == 200 and "That is not the token" in body
    status, body = tab.request(url + "/", headers={"Accept": "text/html"})
    assert "Log in" in body and 'id="episodes"' not in body
    status, body = tab.request(url + "/login", {"token": TOKEN, "next": "//evil.example/"})
    assert status == 200 and 'id="episodes"' in body  # redirected to / of this app
    status, body = tab.request(url + f"/episodes/{EP}")
    assert status == 200 and 'class="card"' in body
    status, body = tab.request(url + "/logout", {})
    assert raw(url, "/")[0] == 401
    status, body = tab.request(url + "/", headers={"Accept": "text/html"})
    assert 'name="token"' in body


# ----------------------------------------------------------------------------- hostile paths
HOSTILE = ["..", "%2e%2e", "..%2f..%2fsecret.txt", "%2e%2e%2f%2e%2e%2fsecret.txt",
           "%2fetc%2fpasswd", "/etc/passwd", "..%5c..%5csecret.txt", "secret.txt%00",
           "x" * 4096, "9" * 5000, "-1", "1e3", "0x10", "99999999999999999999",
           f"{EP}%2f..%2f..%2fsecret.txt", "%252e%252e%252fsecret.txt", "~", "%20"]
ROUTES = [  # (method, template, the slot each hostile part goes into)
    ("GET", "/episodes/{ep}", "ep"),
    ("GET", "/episodes/{ep}/identities/{id}/tracks", "ep"),
    ("GET", "/episodes/{ep}/identities/{id}/tracks", "id"),
    ("GET", "/episodes/{ep}/identities/{id}/tracks?page_no={id}", "id"),
    ("GET", "/episodes/{ep}/tracks/{id}", "ep"),
    ("GET", "/episodes/{ep}/tracks/{id}", "id"),
    ("GET", "/episodes/{ep}/thumbs/{id}.jpg", "ep"),
    ("GET", "/episodes/{ep}/thumbs/{id}.jpg", "id"),
    ("GET", "/episodes/{ep}/faces/{id}.jpg", "ep"),
    ("GET", "/episodes/{ep}/faces/{id}.jpg", "id"),
    ("GET", "/episodes/{ep}/video", "ep"),
    ("GET", "/episodes/{ep}/progress/{id}", "ep"),
    ("GET", "/episodes/{ep}/progress/{id}", "id"),
    ("GET", "/episodes/{ep}/queue", "ep"),
    ("GET", "/static/{id}", "id"),
    ("GET", "/seasons/{ep}", "ep"),
    ("GET", "/seasons/{ep}/season_screentime.csv", "ep"),
    ("POST", "/episodes/{ep}/edit", "ep"),
    ("POST", "/episodes/{ep}/undo", "ep"),
    ("POST", "/episodes/{ep}/rematerialize", "ep"),
]


def test_every_route_with_a_path_part_is_in_the_hostile_list(store, tmp_path):  # noqa: F811
    app = create_app(store, tiny_instance(), Runner(tmp_path / "requests"))
    names = {"ep_id": "ep", "key": "ep", "track_id": "id", "identity_id": "id", "face_id": "id",
             "request_id": "id"}

    def template(path: str) -> str:
        for k, v in names.items():
            path = path.replace("{" + k + "}", "{" + v + "}")
        return path

    routes = {template(r.path) for r in app.routes if "{" in getattr(r, "path", "")}
    assert f"/episodes/{{ep}}/tracks/{{id}}" in routes
    tested = {t.split("?")[0] for _, t, _ in ROUTES}
    assert routes <= tested, f"routes without hostile-path tests: {sorted(routes - tested)}"


def test_hostile_path_parts_never_leave_the_episode(served, store):  # noqa: F811
    tab = Browser()
    status, _ = tab.request(served + f"/episodes/{EP}")
    assert status == 200
    # the routes work with good parts (so a 404 below is the app refusing, not a typo)
    assert raw(served, f"/episodes/{EP}/video")[0] == 200
    assert raw(served, f"/episodes/{EP}/identities/0/tracks")[0] == 200
    assert raw(served, "/static/app.css")[0] == 200
    cookie = "; ".join(f"{c.name}={c.value}" for c in tab.jar)
    seen = 0
    for method, template, slot in ROUTES:
        for part in HOSTILE:
            path = template.format(ep=part if slot == "ep" else EP,
                                   id=part if slot == "id" else "0")
            body = None
            if method == "POST":
                body = urllib.parse.urlencode({"csrf_token": tab.csrf, "op": "undo",
                                               "version": "x"})
            status, _, text = raw(served, path, method, body, headers={"Cookie": cookie})
            assert status in (400, 404), (method, path[:120], status, text[-300:])
            assert MARKER not in text and "root:" not in text and "Traceback" not in text
            seen += 1
    assert seen == len(ROUTES) * len(HOSTILE)
    assert read_edits(store, EP) is None


def test_serve_on_a_shared_address_says_the_dagster_ui_has_no_login(cli_env, capsys):
    # a bad interval stops it before anything starts; the warning comes first
    assert cli_main(["serve", "--host", "0.0.0.0", "--sensor-interval", "2"]) == 2
    out = capsys.readouterr().out
    assert out.startswith("warning: the Dagster UI has no authentication") and \
        "docs/security.md" in out
    assert cli_main(["serve", "--host", "127.0.0.1", "--sensor-interval", "2"]) == 2
    assert "warning" not in capsys.readouterr().out


@pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER), reason=MISSING)
def test_a_browser_logs_in_and_its_forms_carry_the_csrf_token(served_with_token,
                                                              store):  # noqa: F811
    """Real Chromium: a page asked for before login leads to the login form and back; the
    episode page's own forms then post (session cookie and CSRF field) and the edit is written."""
    from selenium.webdriver.common.by import By

    with chromium("1200,900") as d:
        d.get(f"{served_with_token}/episodes/{EP}")
        assert "/login?next=" in d.current_url
        d.find_element(By.ID, "token").send_keys(TOKEN)
        d.find_element(By.ID, "login-button").click()
        assert wait_for(lambda: d.find_elements(By.CSS_SELECTOR, "article.card"), 20)
        assert d.current_url.endswith(f"/episodes/{EP}")
        d.find_element(By.CSS_SELECTOR, "#identity-0 details summary").click()
        d.find_element(By.CSS_SELECTOR, "#identity-0 input[name=name]").send_keys("Alice")
        d.find_element(By.CSS_SELECTOR, "#identity-0 .rename-button").click()
        assert wait_for(lambda: read_edits(store, EP), 20)
        assert json.loads(read_edits(store, EP))["edits"][0]["name"] == "Alice"
