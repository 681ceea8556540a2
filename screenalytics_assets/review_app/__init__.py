"""The review web app (``screenalytics review-ui``): identities as cards with their faces, edits
through ``core.review`` (the CLI's code), re-materialization through Dagster runs.

See ``docs/review.md``. :func:`serve` runs it; :func:`.app.create_app` builds the ASGI app.
"""

from __future__ import annotations


def serve(host: str = "127.0.0.1", port: int = 8502, data_root: str | None = None) -> None:
    """Serve the review app until interrupted, over the configured storage (``STORAGE_BACKEND``,
    local data root by default) and the Dagster instance at ``$DAGSTER_HOME`` (default
    ``<data root>/dagster_home``). With a token in the environment
    (``access.credential_from_env``) every user logs in; without one only a loopback ``host``
    is served.

    Raises:
        StorageConfigError: incomplete storage settings.
        AccessConfigError: a non-loopback ``host`` without a token, or a bad token setting.
    """
    import os
    import threading
    from pathlib import Path

    import uvicorn

    from resources.backend import storage_from_env
    from resources.dagster_storage import data_root_from_env

    from ..cli.common import instance_for
    from . import data
    from .access import check_bind, credential_from_env
    from .app import create_app
    from .runs import Runner

    token = credential_from_env()
    check_bind(host, token)
    root = Path(data_root or data_root_from_env()).resolve()
    os.environ["SCREENALYTICS_DATA_ROOT"] = str(root)  # the re-materialization processes too
    store = storage_from_env(str(root)).store()
    instance = instance_for(root)
    runner = Runner(root / ".review" / "requests")
    app = create_app(store, instance, runner, token=token)
    # the first visitor of a long episode need not wait for its tracks.jsonl to be parsed
    threading.Thread(target=data.warm_caches, args=(store, instance), daemon=True).start()
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning")
    finally:
        runner.stop_all()
