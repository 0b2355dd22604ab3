"""The demo's audit report, opened in a real browser: headless Chromium through chromedriver (Debian's packages,
installed by .ci/run). Every section is there, every analysis this code location defines is filled from the
sample shards, every image decodes, nothing is fetched and no console error occurs. A full-page screenshot is
written to the test's output folder (and to $LAION_AUDIT_TEST_ARTIFACTS when set)."""

from __future__ import annotations

import base64
import os
import shutil
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


@pytest.fixture(scope="module")
def browser():
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.skip(f"Chromium or chromedriver not installed ({CHROMIUM}, {CHROMEDRIVER}); .ci/run installs "
                    "Debian's chromium and chromium-driver where apt-get can")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1280,1000", "--disable-background-networking", "--no-first-run",
                     "--disable-extensions", "--disable-component-update"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def _severe(driver) -> list[dict]:
    return [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def test_console_errors_are_seen_by_the_check(browser, tmp_path):
    """The console check can fail: a page with a script error and a broken image is caught."""
    page = tmp_path / "broken.html"
    page.write_text("<html><body><img src='missing.png'><script>notDefined()</script></body></html>")
    browser.get(page.as_uri())
    assert len(_severe(browser)) >= 1


@pytest.mark.slow
def test_demo_report_renders_with_every_section_filled(browser, demo_run, tmp_path):
    from laion_audit.definitions import build_definitions
    from laion_audit.report.audit_report import ANALYSES, REPORT_FILE

    workdir, result = demo_run
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    report = workdir / "store" / "reports" / REPORT_FILE
    assert f"audit report: {report}" in output  # the demo ends by printing it
    html = report.read_text()
    assert "http://" not in html and "https://" not in html.replace("https://doi.org", "")  # nothing to fetch

    browser.get_log("browser")  # drop earlier entries
    browser.get(report.as_uri())
    assert _severe(browser) == []

    sections = browser.execute_script(
        "return [...document.querySelectorAll('section')].map(s => [s.id, s.querySelector('h2').innerText, "
        "s.querySelectorAll('.missing').length, s.innerText.length])")
    by_id = {sid: (title, missing, length) for sid, title, missing, length in sections}
    assert {"composition", "methods", *(a.name for a in ANALYSES)} <= set(by_id)
    keys = {key.to_user_string() for key in build_definitions().resolve_asset_graph().get_all_asset_keys()}
    defined = [a.name for a in ANALYSES if a.name in keys]
    assert {"crime_cooccurrence", "sentiment_by_group", "keyword_audit"} <= set(defined)
    for name in ["composition", "methods", *defined]:
        title, missing, length = by_id[name]
        assert missing == 0 and length > 200, f"section {name} ({title}) is not filled from the sample shards"

    images = browser.execute_script(
        "return [...document.images].map(i => [i.alt, i.complete, i.naturalWidth, i.naturalHeight])")
    assert len(images) >= 2
    assert all(complete and width > 50 and height > 50 for _, complete, width, height in images), images

    banner = browser.execute_script("return document.querySelector('main > .warning').innerText")
    assert "random-weight" in banner
    provenance = browser.execute_script("return document.querySelector('#crime_cooccurrence .provenance').innerText")
    assert "Shards" in provenance and "RANDOM WEIGHTS" in browser.execute_script(
        "return document.querySelector('#crime_cooccurrence').innerText")

    shot = browser.execute_cdp_cmd("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})
    png = base64.b64decode(shot["data"])
    for folder in filter(None, [tmp_path, os.environ.get("LAION_AUDIT_TEST_ARTIFACTS")]):
        Path(folder).mkdir(parents=True, exist_ok=True)
        (Path(folder) / "audit_report.png").write_bytes(png)
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000
