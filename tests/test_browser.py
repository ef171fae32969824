"""The HTML report in a real browser: headless Chromium loads it offline, paints its charts, logs no error.

Skipped only where no Chromium is installed and CI is not set; in CI (`.ci/run` installs the Debian
`chromium` package) a missing browser fails the test. GPU_EXPERT_SCREENSHOT=PATH also writes the
screenshot there (docs/report.png in the README is made this way).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT

N_CHARTS = 5
WIDTH, HEIGHT = 1100, 3000


def _chromium() -> str | None:
    for name in (os.environ.get("GPU_EXPERT_CHROMIUM", ""), "chromium", "chromium-browser", "google-chrome"):
        if name and (path := shutil.which(name)):
            return path
    return None


@pytest.fixture(scope="module")
def chromium() -> str:
    path = _chromium()
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("CI is set but no chromium binary was found (.ci/run installs the Debian package)")
        pytest.skip("no chromium binary (apt-get install chromium); CI runs this test")
    return path


def _run(chromium: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
           "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--disable-extensions", "--hide-scrollbars", "--mute-audio", f"--user-data-dir={profile}",
           # Offline: any host name fails to resolve, so a report that fetched anything would show it.
           "--host-resolver-rules=MAP * ~NOTFOUND", "--enable-logging=stderr", "--v=0", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=90)


PROBE_TAG = "gpu-expert-probe "


def _console(stderr: str) -> tuple[list[str], dict | None]:
    """(what the page wrote to the console other than the probe, the probe's findings). The report has no
    script of its own: any console line is a load error or a policy violation."""
    lines = [line for line in stderr.splitlines() if ":CONSOLE" in line]
    found = None
    for line in lines:
        m = re.search(rf'"{PROBE_TAG}(.*)", source:', line)
        if m:
            found = json.loads(m.group(1))
    return [line for line in lines if PROBE_TAG not in line], found


# Runs before the report's own policy (an inline script ahead of the CSP meta): collects every error and
# policy violation, and after load logs how large each chart was laid out and how many links there are.
_PROBE = """<script>
window.__errs = [];
addEventListener('error',
  e => __errs.push('error ' + (e.message || (e.target && (e.target.src || e.target.href)))), true);
document.addEventListener('securitypolicyviolation',
  e => __errs.push('csp ' + e.violatedDirective + ' ' + e.blockedURI));
addEventListener('load', () => {
  const svgs = [...document.querySelectorAll('figure.chart svg')].map(s => {
    const r = s.getBoundingClientRect(); return [Math.round(r.width), Math.round(r.height)]; });
  console.log('%PROBE%' + JSON.stringify({errors: __errs, svgs: svgs,
    links: document.querySelectorAll('a[href^="http"]').length}));
});
</script>""".replace("%PROBE%", PROBE_TAG)


def test_chromium_paints_the_report_with_its_charts_and_no_console_error(chromium, tmp_path):
    # The committed golden report is what `expert advise --format html` writes (tests/test_snapshots.py).
    html = (ROOT / "tests" / "golden" / "inference-13b-20k-usd.html").read_text(encoding="utf-8")
    # The report as written, with the probe ahead of everything else in <head>.
    probed = tmp_path / "probed.html"
    probed.write_text(html.replace("<head>", "<head>\n" + _PROBE, 1), encoding="utf-8")
    shot = tmp_path / "report.png"
    out = _run(chromium, tmp_path / "profile", f"--screenshot={shot}", f"--window-size={WIDTH},{HEIGHT}",
               probed.as_uri())
    assert shot.is_file(), out.stderr[-2000:]
    errors, probe = _console(out.stderr)
    assert errors == []
    assert probe is not None, out.stderr[-2000:]
    # Laid out: every chart has a real size, nothing failed to load, no policy was violated.
    assert probe["errors"] == []
    assert len(probe["svgs"]) == N_CHARTS and all(w > 300 and h > 50 for w, h in probe["svgs"]), probe["svgs"]
    assert probe["links"] > 10

    # Not blank: a real page of text and charts, with the charts' colours painted.
    import numpy as np
    from PIL import Image

    img = Image.open(shot).convert("RGB")
    assert img.size == (WIDTH, HEIGHT)
    px = np.asarray(img, dtype=np.int16)
    ink = float((px.sum(axis=2) < 720).mean())
    assert ink > 0.05, f"only {ink:.1%} of the screenshot is not white"
    for colour in ((0x00, 0x72, 0xB2), (0xE6, 0x9F, 0x00)):  # weights / KV cache bars: the charts' palette
        painted = int((np.abs(px - np.array(colour)).max(axis=2) < 40).sum())
        assert painted > 2000, (colour, painted)

    if os.environ.get("GPU_EXPERT_SCREENSHOT"):
        img.crop((0, 0, WIDTH, 2170)).save(os.environ["GPU_EXPERT_SCREENSHOT"], optimize=True)
