"""The scanner's figure of issue #9 §4: from a camera frame holding a QR code to the verdict.

The real app in Debian's headless Chromium, its fake camera showing the printed card
of a valid library pass (the service's own card PNG), served by the real service on
127.0.0.1 over SQLite in a temporary instance. The app keeps, per verdict, the time
from taking the frame that held the code (``performance.now()`` before decoding) to
the first animation frame after the verdict was put on screen; a loop in the page
taps "Scan next" after each verdict until it has enough. Also the bytes the service
sends: for a first visit (the app, its decoder and the bundle, all that is kept for
offline use) and for a later sync after a revocation (a changed bundle), as served
and as gzip would send them. ``python scripts/bench_scanner.py [--frames N]``.
"""

from __future__ import annotations

import argparse
import gzip
import shutil
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # tests.* holds the fake camera and the reference holders

from tests.factories import HOLDERS, PASS_TYPES  # noqa: E402
from tests.web.browser import live_server  # noqa: E402
from tests.web.fakecamera import chromium_with_camera, video_of  # noqa: E402
from wallet.config import Settings  # noqa: E402
from wallet.keys import KeyRole  # noqa: E402
from wallet.keystore import KeyStore  # noqa: E402
from wallet.services import passes  # noqa: E402
from wallet.services.context import Services  # noqa: E402
from wallet.store.db import Database  # noqa: E402
from wallet.web import create_app  # noqa: E402
from wallet.web.webcontext import _utc_now  # noqa: E402

TARGET_MS = 250.0
WAIT_MS = 60_000

# In the page: tap "Scan next" after every verdict until `count` more times were kept.
_LOOP = """async (count) => {
    const app = await import("/scan/app.js");
    app.REPEAT_PAUSE.ms = 0;  // the same card stays in view: read it again at once
    const verdict = document.getElementById("verdict");
    const start = app.timings.length;
    const deadline = performance.now() + 10 * 60 * 1000;
    while (app.timings.length - start < count && performance.now() < deadline) {
        const seen = app.timings.length;
        if (!verdict.hidden) {
            document.getElementById("verdict-back").click();  // the camera scans again
        }
        while (app.timings.length === seen && performance.now() < deadline) {
            await new Promise((resolve) => setTimeout(resolve, 2));
        }
    }
    return app.timings.slice(start, start + count);
}"""


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def frame_to_verdict(*, frames: int = 50) -> dict[str, Any]:
    """Median and p95 (ms) from a camera frame holding the QR code to the verdict on screen."""
    folder = Path(tempfile.mkdtemp(prefix="bench-scanner-"))
    try:
        settings = Settings(
            public_url="http://127.0.0.1",
            issuer="https://pass.stadt-musterstadt.de",
            signing_keys_dir=folder / "keys",
            instance_dir=folder / "instance",
            dev_mode=True,
            secret_key="bench-scanner-secret-key-0123456789",
        )
        now = _utc_now()
        keys = KeyStore(settings.signing_keys_dir, passphrase=None, dev_mode=True)
        keys.generate(alg="ES256", role=KeyRole.ROOT, pass_types=frozenset(), now=now)
        keys.generate(alg="ES256", role=KeyRole.PASS, pass_types=frozenset(PASS_TYPES), now=now)
        services = Services(settings=settings, keys=keys, pass_types=PASS_TYPES)
        db = Database(f"sqlite:///{folder / 'wallet.sqlite3'}")
        db.upgrade()
        with db.transaction(write=True) as session:
            issued = passes.issue_pass(
                session, services, type_id="library", holder=dict(HOLDERS["library"]),
                actor="bench", now=now,
            )  # fmt: skip
        app = create_app(settings, services=services, db=db, config={"RATELIMIT_ENABLED": False})
        card = app.test_client().get(f"/p/{issued.claim_secret}/card.png").data
        served: list[tuple[int, int]] = []  # (bytes, gzipped bytes) per response
        inner = app.wsgi_app

        def counting(environ: Any, start_response: Any) -> Any:
            data = b"".join(inner(environ, start_response))
            served.append((len(data), len(gzip.compress(data)) if data else 0))
            return [data]

        app.wsgi_app = counting  # type: ignore[method-assign]
        video = video_of(card, folder / "card.y4m")
        with live_server(app) as url, chromium_with_camera(video) as browser:
            context = browser.new_context(viewport={"width": 390, "height": 844}, locale="de-DE")
            page = context.new_page()
            page.goto(f"{url}/scan/")
            page.wait_for_selector("body[data-ready=true]", timeout=WAIT_MS)
            page.wait_for_function("() => Number(document.body.dataset.synced || 0) >= 1")
            page.wait_for_function("() => navigator.serviceWorker.controller !== null",
                                   timeout=WAIT_MS)  # fmt: skip
            first_visit = (sum(b for b, _ in served), sum(z for _, z in served))
            served.clear()
            with db.transaction(write=True) as session:  # the next sync brings a changed bundle
                other = passes.issue_pass(session, services, type_id="library",
                                          holder=dict(HOLDERS["library"]), actor="bench",
                                          now=now)  # fmt: skip
                passes.change_state(session, services, other.record.serial, action="revoke",
                                    reason="bench", actor="bench", now=now)  # fmt: skip
            # The app syncs when it comes back to the front (the camera may already show a
            # verdict over the "update now" button).
            page.evaluate("() => window.dispatchEvent(new Event('focus'))")
            page.wait_for_function("() => Number(document.body.dataset.synced || 0) >= 2")
            later_sync = (sum(b for b, _ in served), sum(z for _, z in served))
            if page.is_visible("#camera-start"):
                page.click("#camera-start")
            times: list[float] = page.evaluate(_LOOP, frames)
            tones = page.locator("#log-rows li.log__row--green").count()
            context.close()
        db.dispose()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if len(times) < frames:
        raise RuntimeError(f"only {len(times)} verdicts of {frames} within the time allowed")
    return {
        "frames": len(times),
        "median_ms": statistics.median(times),
        "p95_ms": _percentile(times, 0.95),
        "target_ms": TARGET_MS,
        "green_in_log": tones,
        "first_visit_bytes": first_visit[0],
        "first_visit_gzip": first_visit[1],
        "sync_bytes": later_sync[0],
        "sync_gzip": later_sync[1],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=50, help="verdicts to time (>= 50)")
    args = parser.parse_args()
    result = frame_to_verdict(frames=max(50, args.frames))
    print(
        f"camera frame -> verdict on screen, {result['frames']} frames: "
        f"median {result['median_ms']:.1f} ms, p95 {result['p95_ms']:.1f} ms "
        f"(target <= {result['target_ms']:.0f} ms); first visit {result['first_visit_bytes']:,} "
        f"bytes ({result['first_visit_gzip']:,} gzipped); a later sync {result['sync_bytes']:,} "
        f"bytes ({result['sync_gzip']:,} gzipped)"
    )


if __name__ == "__main__":
    main()
