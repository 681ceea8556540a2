"""Benchmark: `screenalytics run` per profile and model pack against the naive per-frame loop, peak
memory against episode length, and re-clustering against a full run.

    python benchmarks/bench.py                                # everything (about 30 min on 2 cores)
    python benchmarks/bench.py --profiles balanced --repeat 1 --packs ci_pack   # while iterating
    python benchmarks/bench.py --repeat 16 --profiles fast,balanced --memory 16  # the goals
    python benchmarks/bench.py --memory 8 --recluster         # also x1 vs x8, and a re-cluster
    python benchmarks/bench.py --repeat 16 --threads --packs ci_pack  # also the detection pass's
                                                              # CPU by thread
    python benchmarks/bench.py --observe 200   # only: episode_video observation, 200 episodes

The input is built at run time, outside the repository (``$SCREENALYTICS_BENCH_DIR``, default
``<tmp>/screenalytics-bench``): the real Hamilton clip from ../shared/media upscaled to 1280x720
and repeated ``--repeat`` times (4: 36.7 s of real broadcast video with its real cuts; 16: 2.4 min,
where a run's fixed costs amortise as they do on an episode), encoded once with libx264 and reused.
The naive loop runs on the shortest input only (it has no fixed cost: its frames per second do not
depend on length), and every ratio to it is computed from the two frame rates. The decode-only rate
(PyAV, FFmpeg's own threads, no conversion) is the physical limit every figure is read against.
A run's fixed cost is its wall time minus the stages' own compute (process start, imports, the
Dagster instance and event log, model loading, the table at the end); it is also split, from the
run's event log, into its start (process start to the detection pass), its end (after the last
asset is materialized) and what lies between the stages (step bookkeeping, asset checks,
artifacts written and read). With ``--threads``, the detection pass also runs alone, outside
Dagster, and its CPU is split by thread (the detector calls, FFmpeg's decoding threads, the decode
thread's conversions and shot cuts): its CPU over the cores is the least wall time any schedule of
that work could take. Every measurement runs in its own process, so that its peak
resident memory (ru_maxrss of that process) is its own; figures and ratios come from one
invocation on one machine. The show's facebank is built before the timing (once per show, not
per episode). Models: the real packs from ../shared/models (override with
SCREENALYTICS_SHARED); ``--device cuda`` runs both sides on ONNX Runtime's CUDA provider where
onnxruntime-gpu is installed.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from fractions import Fraction
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SCREENALYTICS_SHARED", REPO.parent / "shared")).resolve()
CLIP = SHARED / "media" / "short_hamilton_clip.mp4"
FACEBANK = SHARED / "media" / "facebank"
BENCH_DIR = Path(os.environ.get("SCREENALYTICS_BENCH_DIR",
                                Path(tempfile.gettempdir()) / "screenalytics-bench"))
STAGES = ["detections", "tracks", "faces", "embeddings", "identities", "track_reps", "cast_links",
          "screentime"]
#: Per stage, the metadata entry that counts what it processed (frames or faces).
STAGE_COUNTS = {"detections": ("frames_decoded", "frames"), "faces": ("faces", "faces"),
                "embeddings": ("faces", "faces"), "tracks": ("detections", "detections")}
EP_ID = "bench-s01e01"
SHOW = "bench"
#: Naive loop: a face is labelled with its nearest facebank reference above this cosine
#: similarity (the pack's cast_link_thresh), else "unknown".
NAIVE_THRESH = {"ci_pack": 0.30, "ci_pack_mbf": 0.45}


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


# --------------------------------------------------------------------------- input
def make_bench_video(src: Path, dest: Path, width: int = 1280, height: int = 720,
                     repeat: int = 4) -> Path:
    """``src`` scaled to ``width`` x ``height`` (bicubic) and repeated ``repeat`` times, H.264
    (libx264, CRF 20) at the source's frame rate; written atomically, reused when present."""
    import av

    if dest.exists():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_suffix(".part.mp4")
    with av.open(str(src)) as inp:
        rate = inp.streams.video[0].average_rate or Fraction(30000, 1001)
    with av.open(str(tmp), "w") as out:
        stream = out.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": "20", "preset": "veryfast"}
        n = 0
        for _ in range(repeat):
            with av.open(str(src)) as inp:
                for frame in inp.decode(video=0):
                    scaled = frame.reformat(width=width, height=height, format="yuv420p",
                                            interpolation="BICUBIC")
                    scaled.pts, scaled.time_base = n, 1 / rate
                    n += 1
                    for packet in stream.encode(scaled):
                        out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    tmp.replace(dest)
    return dest


def bench_video(repeat: int) -> Path:
    return make_bench_video(CLIP, BENCH_DIR / f"hamilton_720p_x{repeat}.mp4", repeat=repeat)


# --------------------------------------------------------------------------- children
def child_facebank(root: str, pack: str, profile: str) -> dict:
    """Build the show's facebank in a fresh data root (not timed)."""
    from dagster import DagsterEventType, DagsterInstance

    from resources.storage import LocalStore
    from screenalytics_assets.settings import load_settings
    from tests.helpers import build_facebank

    home = Path(root) / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    instance = DagsterInstance.from_config(str(home))
    # A failed facebank check (a cast member whose photos give no face with this profile's
    # detector settings) is reported, not fatal: the episode run is what is measured.
    result = build_facebank(LocalStore(Path(root) / "data"), instance,
                            load_settings(profile=profile, model_pack=pack), SHOW, FACEBANK,
                            raise_on_error=False)
    failed = [e.asset_check_evaluation_data.check_name for e in result.all_events
              if e.event_type == DagsterEventType.ASSET_CHECK_EVALUATION
              and not e.asset_check_evaluation_data.passed]
    return {"failed_checks": failed}


def child_stages(root: str) -> dict:
    """Runtime and processed count of every stage, from the latest materializations; and from
    the event log of the latest run (the episode's), when its detection pass started and when
    its last asset was materialized (Unix seconds: ``"first_stage_at"``, ``"last_asset_at"``).

    The detection pass starts ``runtime_s`` before its step output (the stage's timed block is
    its function's body less the metadata): the first frame is decoded a few milliseconds later.
    """
    from dagster import AssetKey, DagsterEventType, DagsterInstance

    instance = DagsterInstance.from_config(str(Path(root) / "dagster_home"))
    out = {}
    run = instance.get_runs(limit=1)[0]
    records = [r for r in instance.all_logs(run.run_id) if r.dagster_event is not None]
    detections = instance.get_latest_materialization_event(AssetKey("detections"))
    output = next(r for r in records if r.step_key == "detections"
                  and r.dagster_event.event_type == DagsterEventType.STEP_OUTPUT)
    out["first_stage_at"] = output.timestamp - \
        detections.asset_materialization.metadata["runtime_s"].value
    out["last_asset_at"] = max(r.timestamp for r in records if r.dagster_event.event_type
                               == DagsterEventType.ASSET_MATERIALIZATION)
    for stage in STAGES:
        ev = instance.get_latest_materialization_event(AssetKey(stage))
        if ev is None:
            continue
        meta = ev.asset_materialization.metadata
        count = STAGE_COUNTS.get(stage)
        out[stage] = {"runtime_s": meta["runtime_s"].value,
                      "count": meta[count[0]].value if count and count[0] in meta else None,
                      "unit": count[1] if count else None}
        if stage == "detections":
            for name, entry in (("session", "onnxruntime_session"),
                                ("detector_input", "detector_input"),
                                ("provider", "execution_provider")):
                out[name] = meta[entry].value if entry in meta else None
            out["duration_s"] = meta["duration_s"].value
    return out


def child_naive(video: str, pack: str, device: str) -> dict:
    """The loop a user writes first: InsightFace ``FaceAnalysis.get()`` on every frame (SCRFD at
    its default 640x640, every face aligned and embedded one by one), each face labelled with
    its nearest facebank reference by cosine similarity; seconds = labelled frames / fps."""
    import cv2
    import numpy as np
    from insightface.app import FaceAnalysis

    from screenalytics_assets.core.video import iter_frames, probe_video

    providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if device == "cuda" \
        else ["CPUExecutionProvider"]
    app = FaceAnalysis(name=pack, root=str(SHARED), providers=providers,
                       allowed_modules=["detection", "recognition"])
    app.prepare(ctx_id=0 if device == "cuda" else -1, det_size=(640, 640))
    if device == "cuda" and app.det_model.session.get_providers()[0] != providers[0]:
        raise SystemExit("naive loop: the CUDA provider did not load (see ONNX Runtime's log)")
    refs, names = [], []
    for person in sorted(p for p in FACEBANK.iterdir() if p.is_dir()):
        for photo in sorted(person.iterdir()):
            faces = app.get(cv2.imread(str(photo)))
            if faces:
                best = max(faces, key=lambda f: (f.bbox[2] - f.bbox[0]) * (f.bbox[3] - f.bbox[1]))
                refs.append(best.normed_embedding)
                names.append(person.name)
    refs = np.stack(refs)
    info = probe_video(video)
    counts: dict[str, int] = {}
    start = time.perf_counter()
    n = 0
    for frame in iter_frames(video, info, stride=1):
        n += 1
        for face in app.get(frame.image):
            sims = refs @ face.normed_embedding
            label = names[int(sims.argmax())] if sims.max() >= NAIVE_THRESH.get(pack, 0.3) \
                else "unknown"
            counts[label] = counts.get(label, 0) + 1
    wall = time.perf_counter() - start
    return {"wall_s": wall, "video_s": info.duration_s, "frames": n,
            "seconds": {k: v / info.fps for k, v in counts.items()},
            "peak_rss_mb": _peak_rss_mb(), "provider": app.det_model.session.get_providers()[0]}


def child_decode(video: str) -> dict:
    """Decode every frame with PyAV (FFmpeg's frame and slice threads, as the pipeline decodes),
    no pixel-format conversion: the rate no stage that reads every frame can beat."""
    import av

    start = time.perf_counter()
    n = 0
    with av.open(video) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for _ in container.decode(stream):
            n += 1
    wall = time.perf_counter() - start
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {"wall_s": wall, "frames": n, "cpu_s": usage.ru_utime + usage.ru_stime}


class ThreadCPU:
    """CPU seconds per thread of this process, sampled from ``/proc/self/task`` (Linux) every
    ``interval`` seconds while in use as a context manager: Python threads by their name
    (``threading``), every other thread (FFmpeg's decoding threads) as ``"native"``. A thread
    that ends between two samples loses at most ``interval`` seconds of its CPU."""

    def __init__(self, interval: float = 0.1) -> None:
        self._interval = interval
        self._tick = os.sysconf("SC_CLK_TCK")
        self._last: dict[int, tuple[str, float]] = {}
        self._start: dict[int, tuple[str, float]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cpu-sampler", daemon=True)

    def _sample(self) -> None:
        names = {t.native_id: t.name for t in threading.enumerate()}
        for task in Path("/proc/self/task").iterdir():
            try:
                fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:  # the thread ended
                continue
            tid = int(task.name)
            cpu = (int(fields[11]) + int(fields[12])) / self._tick  # utime + stime
            name = names.get(tid) or self._last.get(tid, ("native", 0.0))[0]
            self._last[tid] = (name, cpu)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self._sample()

    def __enter__(self) -> "ThreadCPU":
        self._sample()
        self._start = dict(self._last)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    def by_role(self) -> dict[str, float]:
        """CPU seconds spent inside the block, per role: ``main``, ``decode`` (the decode
        thread: its share of FFmpeg's work, the pixel-format conversions, shot cuts),
        ``model-call`` (the detector calls and the faces aligned in them), ``native``, and
        ``cpu-sampler`` (this measurement's own cost)."""
        out: dict[str, float] = {}
        for tid, (name, cpu) in self._last.items():
            role = "main" if name == "MainThread" else "decode" if name.endswith("-decode") \
                else "model-call" if name.startswith("model-call") else name
            out[role] = out.get(role, 0.0) + cpu - self._start.get(tid, (name, 0.0))[1]
        return out


def child_threads(video: str, pack: str, profile: str) -> dict:
    """The detection pass alone (``core.detect.scan_episode`` with the profile's settings through
    ``scan_options``, as the ``detections`` asset calls it, its crops written to a temporary
    folder): its wall time, its CPU and how the CPU splits between threads (:class:`ThreadCPU`)."""
    from resources.models import load_face_models
    from screenalytics_assets.core.detect import scan_episode, scan_options
    from screenalytics_assets.core.detection_crops import CropWriter
    from screenalytics_assets.settings import load_settings

    s = load_settings(profile=profile, model_pack=pack)
    models = load_face_models(str(SHARED), pack, "cpu")
    with tempfile.TemporaryDirectory(prefix="bench-threads-") as tmp:
        crops = CropWriter(Path(tmp) / "crops")
        before = resource.getrusage(resource.RUSAGE_SELF)
        start = time.perf_counter()
        with ThreadCPU() as threads:
            scan = scan_episode(video, models.detector, **scan_options(s),
                                workers=models.parallel_calls, crops=crops)
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_SELF)
        crops.discard()
    return {"wall_s": wall, "cpu_s": after.ru_utime + after.ru_stime - before.ru_utime
            - before.ru_stime, "threads": threads.by_role(), "frames": scan.video.n_frames,
            "processed": scan.frames_processed, "video_s": scan.video.duration_s}


def child_recluster(video: str, pack: str) -> dict:
    """A full run through Dagster, then a re-cluster after a ``cluster_thresh`` change (only the
    stale assets run)."""
    import logging

    from dagster import AssetKey, DagsterInstance

    from resources.storage import LocalStore
    from screenalytics_assets.cli.common import QUIET_LOGS
    from screenalytics_assets.definitions import EPISODE_JOB, build_definitions
    from screenalytics_assets.settings import load_settings
    from screenalytics_assets.staleness import (
        downstream_closure,
        episode_asset_keys,
        observe_video,
        stale_or_missing,
    )
    from tests.helpers import build_facebank, run_episode

    logging.disable(logging.INFO)
    tmp = Path(tempfile.mkdtemp(prefix="bench-"))
    (tmp / "dagster_home").mkdir()
    instance = DagsterInstance.local_temp(str(tmp / "dagster_home"),
                                          overrides={"telemetry": {"enabled": False}})
    settings = load_settings(model_pack=pack)
    build_facebank(LocalStore(tmp / "data"), instance, settings, SHOW, FACEBANK)
    start = time.perf_counter()
    run = run_episode(tmp, Path(video), EP_ID, settings=settings, instance=instance)
    out = {"wall_s": time.perf_counter() - start, "compute_s": sum(
        instance.get_latest_materialization_event(AssetKey(s)).asset_materialization
        .metadata["runtime_s"].value for s in STAGES)}
    changed = settings.with_overrides({"cluster_thresh": settings["cluster_thresh"] + 0.1})
    defs = build_definitions(changed, data_root=str(run.store.root))
    start = time.perf_counter()
    observe_video(run.instance, run.store, run.ep_id)
    episode_keys = episode_asset_keys(defs)
    keys = stale_or_missing(defs, run.instance, run.ep_id, episode_keys)
    keys = [k for k in episode_keys if k in downstream_closure(defs, keys)]
    defs.resolve_job_def(EPISODE_JOB).execute_in_process(
        instance=run.instance, partition_key=run.ep_id, asset_selection=keys,
        run_config=QUIET_LOGS)
    out["recluster_s"] = time.perf_counter() - start
    out["recluster_assets"] = [k.path[-1] for k in keys]
    out["recluster_compute_s"] = sum(
        run.instance.get_latest_materialization_event(k).asset_materialization
        .metadata["runtime_s"].value for k in keys)
    shutil.rmtree(tmp, ignore_errors=True)
    return out


# --------------------------------------------------------------------------- observation
def bench_observation(n: int, video: Path) -> None:
    """Time one ``episode_video`` observation over ``n`` registered episodes (copies of
    ``video``), against hashing every video in full (what it did before), locally and on S3
    (moto server on loopback: one HEAD per episode before, one listing now)."""
    from resources.storage import LocalStore, file_sha256

    eps = [f"bench-s01e{i:02d}" if i < 100 else f"bench{i // 100}-s01e{i % 100:02d}"
           for i in range(n)]
    with tempfile.TemporaryDirectory() as tmp:
        store = LocalStore(Path(tmp) / "data")
        for ep in eps:
            store.put_video(ep, video)
        size_mb = n * video.stat().st_size / 2**20

        def timed(fn) -> float:
            start = time.perf_counter()
            fn()
            return time.perf_counter() - start

        full = timed(lambda: {ep: file_sha256(store.path(store.video_key(ep))) for ep in eps})
        cold = timed(lambda: store.video_versions(eps))
        warm = timed(lambda: store.video_versions(eps))
        print(f"\n== episode_video observation, {n} local episodes ({size_mb:.0f} MiB of video)")
        print(f"hash every video (before): {full:.3f} s ({size_mb / full:.0f} MiB/s)")
        print(f"first observation (hash + cache): {cold:.3f} s")
        print(f"next observations (cached by size, mtime, inode): {warm:.3f} s "
              f"({full / warm:.0f}x faster here; independent of video size)")
        gib = 1000 * 2 * 1024 / (size_mb / full)
        print(f"at the measured hash rate, 1,000 episodes of 2 GiB would take {gib / 60:.0f} min "
              f"per observation before, {1000 / n * warm:.2f} s now")
    sys.path.insert(0, str(REPO))
    from tests.s3_server import FAKE_AWS_ENV, moto_server, new_bucket, s3_client

    from resources.s3_storage import S3Store

    os.environ.update({k: v for k, v in FAKE_AWS_ENV.items() if k not in os.environ})
    with moto_server() as url, tempfile.TemporaryDirectory() as tmp:
        bucket = new_bucket(url)
        client = s3_client(url)
        for ep in eps:
            client.put_object(Bucket=bucket, Key=f"videos/{ep}/episode.mp4",
                              Body=ep.encode())  # the content does not matter: ETags only
        s3 = S3Store(client, bucket, cache_dir=tmp)
        heads = timed(lambda: {ep: s3.video_version(ep) for ep in eps})
        listing = timed(lambda: s3.video_versions(eps))
        assert s3.video_versions(eps) == {ep: s3.video_version(ep) for ep in eps}
        print(f"\n== episode_video observation, {n} S3 episodes (moto on loopback)")
        print(f"one HEAD per episode (before): {heads:.3f} s")
        print(f"one listing of videos/ (now): {listing:.3f} s ({heads / listing:.0f}x faster)")


# --------------------------------------------------------------------------- parent
def _env(pack: str, device: str, root: Path | None = None) -> dict:
    env = {**os.environ, "SCREENALYTICS_MODEL_ROOT": str(SHARED),
           "SCREENALYTICS_MODEL_PACK": pack, "SCREENALYTICS_DEVICE": device,
           # the repository first, then what the caller's PYTHONPATH holds (e.g. carried wheels)
           "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH"))
                                         if p)}
    if root is not None:
        env.update(SCREENALYTICS_DATA_ROOT=str(root / "data"),
                   DAGSTER_HOME=str(root / "dagster_home"))
    return env


def _child(kind: str, env: dict, *args: str) -> dict:
    # In this repository's folder: a child's `python -c` (the CLI run) puts its working folder
    # first on sys.path, so from another checkout's folder it would run that checkout's code.
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child", kind, *args],
                          env=env, cwd=REPO, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{kind} child failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_cli(video: Path, pack: str, profile: str, device: str) -> dict:
    """Wall time and peak RSS of ``screenalytics run VIDEO --profile P`` in a fresh data root
    (its facebank built first, outside the timing), and the per-stage figures it recorded."""
    root = Path(tempfile.mkdtemp(prefix=f"bench-{pack}-{profile}-"))
    env = _env(pack, device, root)
    fb = _child("facebank", env, str(root), pack, profile)
    if fb["failed_checks"]:
        print(f"      ({profile}: facebank check failed: {', '.join(fb['failed_checks'])})")
    cmd = [sys.executable, "-c", "import sys; from screenalytics_assets.cli import console_main; "
           "sys.exit(console_main())", "run", str(video), "--ep-id", EP_ID,
           "--profile", profile]  # as the `screenalytics` console script runs it
    # run under a fresh probe process, so that the peak RSS it reports is this run's own
    try:
        probe = _child("rss", env, json.dumps(cmd))
        stages = _child("stages", env, str(root))
    finally:
        shutil.rmtree(root, ignore_errors=True)  # the run's data root and Dagster home
    compute = sum(st["runtime_s"] for k, st in stages.items() if k in STAGES)
    start_s = stages.pop("first_stage_at") - probe["start_at"]
    end_s = probe["end_at"] - stages.pop("last_asset_at")
    return {"run_s": probe["wall_s"], "peak_rss_mb": probe["peak_rss_mb"], "cpu_s": probe["cpu_s"],
            "fixed_s": probe["wall_s"] - compute, "start_s": start_s, "end_s": end_s,
            "video_s": stages.pop("duration_s"), "stages": stages, "table": probe["stdout"]}


def child_rss(cmd_json: str) -> dict:
    """Run a command (a JSON list) as this process's only child: its wall time and peak RSS
    (ru_maxrss of the children)."""
    cmd = json.loads(cmd_json)
    start_at, start = time.time(), time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    end_at = start_at + wall
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-3000:])
        raise SystemExit(proc.returncode)
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"wall_s": wall, "peak_rss_mb": usage.ru_maxrss / 1024.0,
            "cpu_s": usage.ru_utime + usage.ru_stime, "stdout": proc.stdout[-4000:],
            "start_at": start_at, "end_at": end_at}


def _print_run(profile: str, r: dict, naive: dict | None) -> None:
    rate = r["video_s"] / r["run_s"]
    vs = f", {rate / (naive['video_s'] / naive['wall_s']):.1f}x the naive loop" if naive else ""
    print(f"  {profile:<9} {r['run_s']:7.2f} s wall  {rate:5.2f}x real time{vs}; "
          f"peak RSS {r['peak_rss_mb']:.0f} MiB; detector input {r['stages'].get('detector_input')}"
          f" on {r['stages'].get('provider')}")
    print(f"      fixed cost {r['fixed_s']:.2f} s (wall minus the stages' compute); CPU "
          f"{r['cpu_s']:.1f} s ({r['cpu_s'] / r['run_s']:.2f} cores busy)")
    between = r["fixed_s"] - r["start_s"] - r["end_s"]
    print(f"      start and end {r['start_s'] + r['end_s']:.2f} s: {r['start_s']:.2f} s from process "
          f"start to the detection pass, {r['end_s']:.2f} s after the last asset; "
          f"{between:.2f} s between the stages (steps, checks, artifacts written and read)")
    for stage in STAGES:
        st = r["stages"].get(stage)
        if not st:
            continue
        rate_s = f"{st['count'] / max(st['runtime_s'], 1e-9):8.1f} {st['unit']}/s" \
            if st.get("count") else ""
        print(f"      {stage:<11} {st['runtime_s']:7.3f} s {rate_s}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profiles", default="fast,balanced,accurate",
                    help="comma-separated settings profiles (default: all three)")
    ap.add_argument("--packs", default="ci_pack,ci_pack_mbf",
                    help="comma-separated model packs under ../shared/models")
    ap.add_argument("--repeat", default="4,16",
                    help="comma-separated times the 720p clip is repeated, one input each (4: "
                         "36.7 s, 16: 2.4 min; default both)")
    ap.add_argument("--no-naive", action="store_true", help="skip the naive per-frame loop")
    ap.add_argument("--memory", type=int, default=0, metavar="N",
                    help="also peak RSS of the first profile on the 720p clip x1 and xN")
    ap.add_argument("--recluster", action="store_true",
                    help="also time a re-cluster after a cluster_thresh change")
    ap.add_argument("--threads", action="store_true",
                    help="also the detection pass alone per profile on the longest input (first "
                         "pack, CPU): its CPU split between the decode thread, the detector calls "
                         "and FFmpeg's threads, and the wall time the cores allow it")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--observe", type=int, default=0, metavar="N",
                    help="only time the episode_video observation of N registered episodes")
    ap.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.observe:
        bench_observation(args.observe, CLIP)
        return
    if args.child:
        kind, *cargs = args.child
        fn = {"facebank": child_facebank, "stages": child_stages, "naive": child_naive,
              "recluster": child_recluster, "rss": child_rss, "decode": child_decode,
              "threads": child_threads}[kind]
        print(json.dumps(fn(*cargs)))
        return

    import platform

    profiles = [p for p in args.profiles.split(",") if p]
    packs = [p for p in args.packs.split(",") if p]
    repeats = sorted({int(r) for r in str(args.repeat).split(",") if r})
    videos = {n: bench_video(n) for n in repeats}
    load = os.getloadavg()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, load average "
          f"{load[0]:.1f} {load[1]:.1f} {load[2]:.1f}; device {args.device}")
    for n, video in videos.items():
        d = _child("decode", _env(packs[0], args.device), str(video))
        print(f"input x{n}: {video} (the Hamilton clip at 1280x720, x{n}); decode only "
              f"{d['frames'] / d['wall_s']:.0f} frames/s ({d['cpu_s']:.1f} s CPU for "
              f"{d['frames']} frames)")
    for pack in packs:
        print(f"\n== model pack {pack}")
        naive = None
        if not args.no_naive:
            # on the shortest input: the loop has no fixed cost, its rate holds at any length
            naive = _child("naive", _env(pack, args.device), str(videos[repeats[0]]), pack,
                           args.device)
            nrate = naive["video_s"] / naive["wall_s"]
            print(f"  naive     {naive['wall_s']:7.2f} s wall  {nrate:5.2f}x real time "
                  f"({naive['frames'] / naive['wall_s']:.1f} frames/s, x{repeats[0]}); peak RSS "
                  f"{naive['peak_rss_mb']:.0f} MiB; on {naive['provider']}")
            print("      labelled seconds: " + ", ".join(
                f"{k} {v:.1f}" for k, v in sorted(naive["seconds"].items(), key=lambda kv: -kv[1])))
        for n, video in videos.items():
            print(f"  -- input x{n}")
            for profile in profiles:
                r = run_cli(video, pack, profile, args.device)
                _print_run(profile, r, naive)
                if profile == profiles[0] and n == repeats[0]:
                    print("      ONNX Runtime session: " + json.dumps(r["stages"].get("session")))
    if args.threads:
        n = repeats[-1]
        cores = len(os.sched_getaffinity(0))
        print(f"\n== the detection pass alone, CPU by thread ({packs[0]}, x{n}, {cores} cores)")
        for profile in profiles:
            t = _child("threads", _env(packs[0], "cpu"), str(videos[n]), packs[0], profile)
            split = ", ".join(f"{k} {v:.1f} s" for k, v in sorted(
                t["threads"].items(), key=lambda kv: -kv[1]))
            print(f"  {profile:<9} {t['wall_s']:6.2f} s wall, {t['cpu_s']:.1f} s CPU "
                  f"({t['cpu_s'] / t['wall_s']:.2f} cores busy; at least "
                  f"{t['cpu_s'] / cores:.2f} s on {cores} cores); {t['processed']} of "
                  f"{t['frames']} frames to the detector")
            print(f"      by thread: {split}")
    if args.memory > 1:
        profile, pack = profiles[0], packs[0]
        print(f"\n== peak memory vs length ({profile}, {pack}, 720p x1 and x{args.memory})")
        runs = {n: run_cli(bench_video(n), pack, profile, args.device) for n in (1, args.memory)}
        for n, r in runs.items():
            print(f"  x{n:<3} {r['video_s']:7.1f} s video, {r['run_s']:7.2f} s wall, peak RSS "
                  f"{r['peak_rss_mb']:.0f} MiB")
        print(f"  peak RSS ratio x{args.memory}/x1: "
              f"{runs[args.memory]['peak_rss_mb'] / runs[1]['peak_rss_mb']:.2f} (goal <= 1.20)")
    if args.recluster:
        p = _child("recluster", _env(packs[0], args.device), str(videos[repeats[0]]), packs[0])
        print(f"\n== re-cluster after a cluster_thresh change ({packs[0]}, balanced)")
        print(f"  assets re-run: {', '.join(p['recluster_assets'])}")
        print(f"  re-cluster wall {p['recluster_s']:.2f} s vs full run {p['wall_s']:.2f} s: "
              f"{100 * p['recluster_s'] / p['wall_s']:.1f}%; asset compute "
              f"{p['recluster_compute_s']:.3f} s vs {p['compute_s']:.2f} s")


if __name__ == "__main__":
    main()
