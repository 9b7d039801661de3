"""A headless Chromium screenshot of report.html shows the figures (offline, file:// URL).

Skipped, with the reason, only when no Chromium is installed (``.ci/run`` installs
Debian's ``chromium``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from else_dse import report

from test_report import scheme_results

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "chrome")


def find_browser() -> str | None:
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    return None


def screenshot(browser: str, html: Path, out: Path, size: tuple[int, int]) -> np.ndarray:
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
           "--no-first-run", "--disable-extensions", "--disable-background-networking",
           "--force-device-scale-factor=1", "--force-color-profile=srgb",
           f"--user-data-dir={out.parent / 'chromium-profile'}",
           f"--window-size={size[0]},{size[1]}", f"--screenshot={out}", html.resolve().as_uri()]
    env = {**os.environ, "HOME": str(out.parent)}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=90, env=env)
    assert out.exists(), f"chromium wrote no screenshot (exit {proc.returncode}): {proc.stderr[-500:]}"
    import matplotlib.image

    return matplotlib.image.imread(out)[..., :3]


def best_match(shot: np.ndarray, figure: np.ndarray) -> float:
    """Mean absolute grey-level difference between ``figure`` and the screenshot patch
    that correlates best with it (0 when the figure is shown pixel for pixel)."""
    from scipy.signal import fftconvolve

    img, t = shot.mean(axis=2), figure[..., :3].mean(axis=2)
    if img.shape[0] < t.shape[0] or img.shape[1] < t.shape[1]:
        return 1.0
    corr = fftconvolve(img, (t - t.mean())[::-1, ::-1], mode="valid")
    y, x = np.unravel_index(np.argmax(corr), corr.shape)
    return float(np.abs(img[y:y + t.shape[0], x:x + t.shape[1]] - t).mean())


@pytest.mark.skipif(find_browser() is None, reason="no Chromium browser installed (apt-get install chromium)")
def test_chromium_screenshot_shows_figures(tmp_path: Path) -> None:
    browser = find_browser()
    assert browser is not None
    html = report.write(scheme_results(), tmp_path / "r")
    # the page must render from a copy with no other files: everything is embedded
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(html, alone / "report.html")
    img = screenshot(browser, alone / "report.html", tmp_path / "shot.png", (1280, 2400))
    assert img.shape[0] >= 2000 and img.shape[1] >= 1200
    assert img.std() > 0.05, "screenshot is blank"
    import matplotlib.image

    pareto = matplotlib.image.imread(tmp_path / "r" / "pareto.png")
    assert pareto.shape[1] <= 1200  # shown at natural size inside the page's 1200 px column
    assert best_match(img, pareto) < 0.01, "the Pareto figure is not visible in the screenshot"


@pytest.mark.skipif(find_browser() is None, reason="no Chromium browser installed (apt-get install chromium)")
def test_main_job_report_headline_in_chromium(tmp_path: Path) -> None:
    """The README's main job (studies/quick.toml, cut to 12 trials and 2 frames), rendered by headless
    Chromium: the text a reader sees first says whether designs fit, the reduction and the baseline."""
    import dataclasses

    from else_dse.search import StudyConfig

    root = Path(__file__).resolve().parents[1]
    config = dataclasses.replace(StudyConfig.load(root / "studies" / "quick.toml"), frames=2)
    study = config.replace(storage=f"sqlite:///{tmp_path / 'q.db'}", trials=12).run(progress_bar=False)
    html = report.write(study, tmp_path / "r")
    browser = find_browser()
    assert browser is not None
    proc = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                           f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", html.resolve().as_uri()],
                          capture_output=True, text=True, timeout=90, env={**os.environ, "HOME": str(tmp_path)})
    dom = proc.stdout
    assert "read this first" in dom, proc.stderr[-500:]
    first = dom[dom.index("read this first"):dom.index("</section>", dom.index("read this first"))]
    assert "complete trials fit the hardware (neuronflow, 1100 cores" in first
    assert "Reference: conventional (trial" in first and "per frame" in first
    assert "x fewer SOPs" in first and "x lower energy" in first and "x lower latency" in first
    assert "Schedule: streamed" in first
    assert "feasible" not in first.lower().replace("infeasible", "")
