"""Dagster's own command-line programs (``dagster``, ``dagster-daemon``, ``dagster-webserver``,
``dagster-graphql``), run from this environment against the Screenalytics code location."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from .core.errors import ScreenalyticsError

#: the Python module that holds the Definitions (``-m`` of every Dagster program)
CODE_LOCATION = "screenalytics_assets.definitions"


def dagster_script(name: str) -> str:
    """Path of the console script ``name`` installed beside this Python (the same environment).

    Raises:
        ScreenalyticsError: the script is not installed here.
    """
    local = Path(sys.executable).parent / name
    found = str(local) if local.exists() else shutil.which(name)
    if not found:
        raise ScreenalyticsError(f"{name} is not installed in {sys.prefix}; run "
                                 "`bash scripts/install.sh` to install Dagster's programs")
    return found


class GraphQLError(ScreenalyticsError):
    """Dagster's GraphQL API could not be reached or did not answer."""


def graphql(query: str, variables: dict | None = None, *, instance_dir: str | None = None,
            webserver_url: str | None = None, env: dict[str, str] | None = None,
            timeout_s: float = 300.0) -> dict:
    """Send a document to Dagster's public GraphQL API and return its JSON answer
    (``{"data": ..., "errors": [...]}``).

    ``webserver_url``: POST it to that running ``dagster-webserver`` (``{url}/graphql``).
    Otherwise run ``dagster-graphql`` on the code location in a process of its own, against the
    instance in ``instance_dir`` (else ``$DAGSTER_HOME``); ``env``: more environment for that
    process (the code location reads its settings and storage from the environment). That
    process loads the code location, so it takes seconds.

    Raises:
        GraphQLError: the webserver could not be reached or gave no JSON; ``dagster-graphql``
            failed or timed out; no instance folder is known.
    """
    if webserver_url:
        import requests

        endpoint = webserver_url.rstrip("/") + "/graphql"
        try:
            response = requests.post(endpoint, json={"query": query, "variables": variables},
                                     timeout=timeout_s)
            response.raise_for_status()
            return response.json()
        except (requests.RequestException, ValueError) as e:
            raise GraphQLError(f"the Dagster webserver at {webserver_url} did not answer ({e}); "
                               "check the URL (`screenalytics serve` prints it)") from None
    full_env = {**os.environ, **(env or {})}
    if instance_dir:
        full_env["DAGSTER_HOME"] = str(Path(instance_dir).resolve())
    if not full_env.get("DAGSTER_HOME"):
        raise GraphQLError("no Dagster instance folder: set DAGSTER_HOME, or pass the "
                           "webserver's URL")
    with tempfile.TemporaryDirectory(prefix="screenalytics-graphql-") as tmp:
        out = Path(tmp) / "answer.json"
        cmd = [dagster_script("dagster-graphql"), "-m", CODE_LOCATION, "-t", query,
               "-v", json.dumps(variables or {}), "-o", str(out)]
        try:
            proc = subprocess.run(cmd, env=full_env, capture_output=True, text=True,
                                  timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise GraphQLError(f"dagster-graphql did not answer within {timeout_s:.0f} s") \
                from None
        if proc.returncode != 0 or not out.exists():
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
            raise GraphQLError(f"dagster-graphql failed (exit {proc.returncode}): "
                               + " | ".join(tail))
        return json.loads(out.read_text())
