"""Who may use the review app, and protection against cross-site request forgery (CSRF).

The review app edits the analysis and serves the episodes' videos and faces, so it must not trust
whoever reaches its port. :class:`AccessMiddleware` sits in front of every route:

- **Credential.** A token from ``SCREENALYTICS_REVIEW_TOKEN`` (or the first line of the file named
  by ``SCREENALYTICS_REVIEW_TOKEN_FILE``; see :func:`credential_from_env`). With a token set,
  every request but the login page, the static files and the favicon needs a session a browser
  got by logging in at ``/login`` (a form that asks for the token) or the header
  ``Authorization: Bearer TOKEN`` (scripts). Without a token the app only listens on loopback
  (:func:`check_bind` refuses any other ``--host``) and answers only requests whose ``Host``
  header names loopback, so a web page cannot reach it through a DNS name rebound to 127.0.0.1.
- **CSRF.** Each browser session (a signed cookie, ``HttpOnly``, ``SameSite=Lax``) carries a
  random token that every page puts in its forms (``csrf_token``) and htmx sends as the header
  ``X-CSRF-Token``; every unsafe method (POST, PUT, PATCH, DELETE) without it is refused (403),
  and so is one whose ``Origin`` (or, without one, ``Referer``) names another host than the
  request's. Bearer requests need no CSRF token (a browser never adds that header by itself) but
  get the same ``Origin`` check.

Why our own middleware: Starlette has the pieces (``SessionMiddleware`` for a signed cookie,
``TrustedHostMiddleware``) but no authentication or CSRF check, and the CSRF packages for
Starlette (``starlette-csrf``, ``fastapi-csrf-protect``) use a double-submit cookie that a
sibling site can overwrite and need a JSON client; the whole check is a few lines over
``itsdangerous`` (the signer Starlette's sessions use). The session cookie is signed with a key
made at start-up, so restarting the app logs everyone out. See docs/security.md.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import os
import secrets
from collections.abc import Callable
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import parse_qs, quote, urlsplit

from ..core.errors import ScreenalyticsError

TOKEN_ENV = "SCREENALYTICS_REVIEW_TOKEN"
TOKEN_FILE_ENV = "SCREENALYTICS_REVIEW_TOKEN_FILE"
#: Shortest token accepted (characters): ``secrets.token_urlsafe(16)`` gives 22.
MIN_TOKEN_LEN = 16
#: How long a login lasts (s).
SESSION_MAX_AGE_S = 12 * 3600
#: Largest form body the CSRF check reads (bytes); the app's forms are a few hundred bytes.
MAX_FORM_BYTES = 64 * 1024
#: Paths served without a login (the login page and what it needs to render), and a prefix.
PUBLIC_PATHS = frozenset({"/login", "/favicon.ico"})
PUBLIC_PREFIX = "/static/"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
CSRF_FIELD = "csrf_token"
CSRF_HEADER = b"x-csrf-token"


class AccessConfigError(ScreenalyticsError):
    """The review app's access settings are unusable (no credential for a shared address, an
    unreadable or too short token)."""


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or name as given to ``--host``) is a loopback address:
    ``localhost``, ``127.0.0.0/8`` or ``::1``. Other names count as not loopback (they may
    resolve anywhere); ``0.0.0.0`` and ``::`` are every interface, not loopback."""
    host = host.strip().strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def credential_from_env(environ: dict | None = None) -> str | None:
    """The review app's token: ``$SCREENALYTICS_REVIEW_TOKEN``, else the first line of the file
    ``$SCREENALYTICS_REVIEW_TOKEN_FILE``, else ``None`` (no credential).

    Raises:
        AccessConfigError: the file cannot be read or is empty, or the token is shorter than
            :data:`MIN_TOKEN_LEN` characters (each names the fix).
    """
    env = os.environ if environ is None else environ
    token, source = env.get(TOKEN_ENV), TOKEN_ENV
    if not token and env.get(TOKEN_FILE_ENV):
        path = Path(env[TOKEN_FILE_ENV]).expanduser()
        source = f"{TOKEN_FILE_ENV} ({path})"
        try:
            lines = path.read_text().splitlines()
        except OSError as exc:
            raise AccessConfigError(
                f"cannot read the review app's token file {path} ({exc.strerror}): set "
                f"{TOKEN_FILE_ENV} to a readable file holding the token") from None
        token = lines[0].strip() if lines else ""
        if not token:
            raise AccessConfigError(f"the review app's token file {path} is empty: write a "
                                    "token into it, e.g. `python -c 'import secrets; "
                                    "print(secrets.token_urlsafe(24))' > FILE`")
    if not token:
        return None
    if len(token) < MIN_TOKEN_LEN:
        raise AccessConfigError(
            f"the review app's token from {source} has {len(token)} characters; use at least "
            f"{MIN_TOKEN_LEN}, e.g. `python -c 'import secrets; print(secrets.token_urlsafe(24))'`")
    return token


def check_bind(host: str, token: str | None) -> None:
    """Refuse to serve the app on a non-loopback address without a credential.

    Raises:
        AccessConfigError: ``host`` is not loopback and ``token`` is ``None``.
    """
    if token is None and not is_loopback(host):
        raise AccessConfigError(
            f"--host {host} is not a loopback address, and the review app edits the analysis "
            f"and serves the videos to whoever reaches it: set {TOKEN_ENV} (or {TOKEN_FILE_ENV}, "
            "a file holding it) to a secret token of at least "
            f"{MIN_TOKEN_LEN} characters, or leave --host at 127.0.0.1 (docs/security.md)")


def _host_name(value: str) -> str:
    """The host part of a ``Host`` header value (``[::1]:8502`` -> ``::1``)."""
    return urlsplit(f"//{value}").hostname or ""


class AccessMiddleware:
    """ASGI middleware: authentication (when ``token`` is set), the loopback ``Host`` check
    (when it is not), and the CSRF check on every unsafe method. See the module docstring.

    Sets ``request.state.csrf_token`` (the session's CSRF token, for the templates).

    Args:
        app: the ASGI app it protects.
        token: the credential, or ``None`` (loopback only).
        refuse: ``(scope, status, title, message) -> Response``, the page a refused request
            gets (the app's error page).
    """

    def __init__(self, app, token: str | None, refuse: Callable) -> None:
        from itsdangerous import URLSafeTimedSerializer

        self.app = app
        self.token = token
        self.refuse = refuse
        self.signer = URLSafeTimedSerializer(secrets.token_bytes(32),
                                             salt="screenalytics-review-session")

    # ----------------------------------------------------------------- the session cookie
    def _cookie_name(self, scope) -> str:
        # cookies do not keep ports apart: two apps on one host must not overwrite each other's
        port = (scope.get("server") or (None, 0))[1]
        return f"screenalytics_review_{port}"

    def _session(self, scope, headers: dict[bytes, bytes]) -> dict | None:
        from itsdangerous import BadSignature

        jar = SimpleCookie()
        try:
            jar.load(headers.get(b"cookie", b"").decode("latin-1"))
        except Exception:  # a malformed Cookie header is no session, not an error
            return None
        morsel = jar.get(self._cookie_name(scope))
        if morsel is None:
            return None
        try:
            data = self.signer.loads(morsel.value, max_age=SESSION_MAX_AGE_S)
        except BadSignature:
            return None
        return data if isinstance(data, dict) and isinstance(data.get("csrf"), str) else None

    def _set_cookie(self, scope, headers: dict[bytes, bytes], session: dict) -> bytes:
        https = scope.get("scheme") == "https" or headers.get(b"x-forwarded-proto") == b"https"
        value = self.signer.dumps(session)
        return (f"{self._cookie_name(scope)}={value}; Path=/; HttpOnly; SameSite=Lax; "
                f"Max-Age={SESSION_MAX_AGE_S}" + ("; Secure" if https else "")).encode()

    # ----------------------------------------------------------------- checks
    def _bearer_ok(self, headers: dict[bytes, bytes]) -> bool:
        auth = headers.get(b"authorization", b"").decode("latin-1")
        scheme, _, value = auth.partition(" ")
        return (self.token is not None and scheme.lower() == "bearer"
                and hmac.compare_digest(value.strip().encode(), self.token.encode()))

    @staticmethod
    def _cross_origin(headers: dict[bytes, bytes]) -> str | None:
        """The foreign origin an unsafe request came from, or ``None`` when it names this host
        (or no origin at all: a script, or a browser that sends neither header)."""
        sent = (headers.get(b"origin") or headers.get(b"referer") or b"").decode("latin-1")
        if not sent or sent == "null":
            return sent or None
        parts = urlsplit(sent)
        own = {headers.get(b"host", b"").decode("latin-1").lower(),
               headers.get(b"x-forwarded-host", b"").decode("latin-1").lower()} - {""}
        return None if parts.netloc.lower() in own else f"{parts.scheme}://{parts.netloc}"

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        path, method = scope.get("path", ""), scope.get("method", "GET")
        if self.token is None and not is_loopback(_host_name(
                headers.get(b"host", b"").decode("latin-1"))):
            return await self._refuse(scope, receive, send, 400, "Host not allowed",
                                      "this review app serves only http://127.0.0.1 (or "
                                      "localhost); to share it, start it with a token "
                                      "(docs/security.md)")
        bearer = self._bearer_ok(headers)
        session = self._session(scope, headers)
        fresh = session is None
        if fresh:
            session = {"csrf": secrets.token_urlsafe(32), "auth": False}
        authed = self.token is None or bearer or session.get("auth") is True
        scope.setdefault("state", {})["csrf_token"] = session["csrf"]
        public = path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIX)

        if not authed and not public:
            if method in ("GET", "HEAD") and b"text/html" in headers.get(b"accept", b""):
                target = path + (f"?{scope['query_string'].decode('latin-1')}"
                                 if scope.get("query_string") else "")
                return await self._redirect(scope, receive, send, headers, session, fresh,
                                            f"/login?next={quote(target, safe='')}")
            return await self._refuse(scope, receive, send, 401, "Log in first",
                                      "this review app needs its token: log in at /login, or "
                                      "send the header Authorization: Bearer TOKEN",
                                      extra=[(b"www-authenticate", b'Bearer realm="review"')])

        if method in UNSAFE_METHODS:
            foreign = self._cross_origin(headers)
            if foreign is not None:
                return await self._refuse(scope, receive, send, 403, "Request refused",
                                          f"a form on {foreign} cannot send edits to this app; "
                                          "use the review app's own page")
            body, receive = await _buffer(receive)
            if body is None:
                return await self._refuse(scope, receive, send, 413, "Request too large",
                                          f"forms of this app are under {MAX_FORM_BYTES} bytes")
            if not bearer:
                sent = headers.get(CSRF_HEADER, b"").decode("latin-1") or _form_field(
                    headers, body, CSRF_FIELD)
                if fresh or not sent or not hmac.compare_digest(sent.encode(),
                                                                session["csrf"].encode()):
                    return await self._refuse(
                        scope, receive, send, 403, "This form has expired",
                        "its security token is missing or belongs to another session (the "
                        "app was restarted, or the form did not come from this app): reload the "
                        "page and redo the edit", headers=headers, session=session, fresh=fresh)
            if path == "/login" and method == "POST":
                return await self._login(scope, receive, send, headers, session, body)
            if path == "/logout" and method == "POST":
                session = {"csrf": secrets.token_urlsafe(32), "auth": False}
                return await self._redirect(scope, receive, send, headers, session, True, "/")

        async def send_with_cookie(message):
            if message["type"] == "http.response.start" and fresh:
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"],
                                      (b"set-cookie", self._set_cookie(scope, headers, session))]
            await send(message)

        await self.app(scope, receive, send_with_cookie)

    async def _login(self, scope, receive, send, headers, session, body: bytes):
        sent = _form_field(headers, body, "token")
        nxt = _form_field(headers, body, "next") or "/"
        if not nxt.startswith("/") or nxt.startswith("//") or "\\" in nxt:
            nxt = "/"  # never redirect off this app
        if self.token is None:
            return await self._redirect(scope, receive, send, headers, session, False, nxt)
        if not hmac.compare_digest(sent.encode(), self.token.encode()):
            await asyncio.sleep(0.5)  # slows guessing down; the token's length does the rest
            return await self._redirect(scope, receive, send, headers, session, False,
                                        f"/login?failed=1&next={quote(nxt, safe='')}")
        # a new CSRF token at login: one planted before it is worth nothing after
        session = {"csrf": secrets.token_urlsafe(32), "auth": True}
        return await self._redirect(scope, receive, send, headers, session, True, nxt)

    async def _redirect(self, scope, receive, send, headers, session, set_cookie: bool,
                        location: str):
        from starlette.responses import RedirectResponse

        response = RedirectResponse(location, 303)
        if set_cookie:
            response.raw_headers.append((b"set-cookie",
                                         self._set_cookie(scope, headers, session)))
        await response(scope, receive, send)

    async def _refuse(self, scope, receive, send, status: int, title: str, message: str,
                      extra: list | None = None, headers=None, session=None, fresh=False):
        response = self.refuse(scope, status, title, message)
        response.raw_headers.extend(extra or [])
        if fresh and session is not None:
            response.raw_headers.append((b"set-cookie",
                                         self._set_cookie(scope, headers, session)))
        await response(scope, receive, send)


async def _buffer(receive):
    """Read the whole request body (at most :data:`MAX_FORM_BYTES`); returns ``(body, receive)``
    with a ``receive`` that hands the body to the app again, or ``(None, receive)`` when the
    body is larger."""
    chunks, size, more = [], 0, True
    while more:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_FORM_BYTES:
            return None, receive
        chunks.append(chunk)
        more = message.get("more_body", False)
    body = b"".join(chunks)
    sent = False

    async def replay():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return body, replay


def _form_field(headers: dict[bytes, bytes], body: bytes, name: str) -> str:
    """A field of a URL-encoded form body (``""`` when absent or the body is another type)."""
    ctype = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
    if ctype != b"application/x-www-form-urlencoded":
        return ""
    values = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True).get(name)
    return values[0] if values else ""
