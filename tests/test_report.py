"""The report as a person sees it, and Snakemake's own report from the README's main install.

- The pipeline's report (results/report/report.html of the session's small runs, see
  conftest.py) opened in headless Chromium 1280 px wide: every image loads, the console has
  no errors, nothing overflows the page horizontally, no table scrolls sideways in its box,
  and a full-page screenshot is saved in the test's tmp_path (its path is printed). Small
  pages that break one rule each show that every check can fail.
- ``snakemake --report report.zip`` run by a virtual environment installed exactly as the
  README's main command installs it (no test extras): the archive holds every figure
  workflow/rules/report.smk flags with ``report()``, each with its caption, and it opens in
  the browser.

The browser is the system's: Debian's ``chromium`` and ``chromium-driver``, driven by Selenium
with both executables named, so nothing is downloaded. Without them the browser tests skip,
saying so; with ``BMM_REQUIRE_BROWSER=1`` or ``BMM_REQUIRE_ALL=1`` (.ci/run) they fail instead.
"""

from __future__ import annotations

import base64
import html
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from conftest import REPO, Run, report_figures, require

SMALL = yaml.safe_load((REPO / "tests/config/config.yaml").read_text())


def figures_of(run) -> dict[str, Path]:
    """Every figure a finished run flags for the report: output path -> caption file."""
    return report_figures(SMALL["fit"]["K"], run.sets)


def categories_of(run) -> list[str]:
    """The categories of `snakemake --report` (workflow/rules/common.smk's figure_outputs):
    one per data set, and one for the figures of the whole run."""
    return ["All data sets", *run.sets]


WIDTH, HEIGHT = 1280, 900

# Headless Chromium as root, on a network that reaches nothing: no sandbox (root), no GPU,
# /tmp rather than a small /dev/shm, and none of the background connections it would stall on.
CHROMIUM_FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    f"--window-size={WIDTH},{HEIGHT}",
]


# ---------------------------------------------------------------------------------------
# The browser and what it sees


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """Headless Chromium through chromedriver, its viewport WIDTH x HEIGHT CSS pixels."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    chromedriver = shutil.which("chromedriver")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        webdriver = None
    missing = [
        name
        for name, found in (
            ("chromium", chromium),
            ("chromedriver", chromedriver),
            ("selenium (the test extra)", webdriver),
        )
        if not found
    ]
    if missing:
        reason = (
            f"no headless browser: {', '.join(missing)} not found "
            "(Debian: apt-get install --no-install-recommends chromium chromium-driver)"
        )
        require("browser", reason)
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=chromedriver), options=options)
    try:
        driver.set_page_load_timeout(120)
        # the window's outer size is not the page's: fix the viewport itself
        metrics = {"width": WIDTH, "height": HEIGHT, "deviceScaleFactor": 1, "mobile": False}
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
        yield driver
    finally:
        driver.quit()


PAGE_STATE = """
const root = document.documentElement;
return {
  images: Array.from(document.images, (i) => ({
    alt: i.alt, src: i.src.slice(0, 60), complete: i.complete, naturalWidth: i.naturalWidth,
  })),
  innerWidth: window.innerWidth,
  clientWidth: root.clientWidth,
  scrollWidth: root.scrollWidth,
  tooWide: Array.from(document.body.querySelectorAll("*"))
    .filter((e) => e.getBoundingClientRect().right > root.clientWidth + 0.5)
    .slice(0, 5)
    .map((e) => `<${e.tagName.toLowerCase()}> ${Math.round(e.getBoundingClientRect().width)} px`),
  scrolledTables: Array.from(document.querySelectorAll("table"))
    .filter((t) => t.parentElement.scrollWidth > t.parentElement.clientWidth + 0.5)
    .map((t) => `${Math.round(t.scrollWidth)} px in ${t.parentElement.clientWidth} px, ` +
      `columns ${Array.from(t.querySelectorAll("th"), (h) => h.textContent).join(" | ")}`),
};
"""


@dataclass
class Page:
    """What the browser saw of one page, and the problems a reader would meet."""

    images: list[dict]
    console_errors: list[str]
    inner_width: int
    client_width: int  # the viewport less its vertical scrollbar
    scroll_width: int  # the width of everything on the page
    too_wide: list[str]
    scrolled_tables: list[str]  # tables wider than their box, which then scrolls sideways
    screenshot: Path

    def problems(self) -> list[str]:
        found = [
            f"image {i['alt']!r} did not load (src {i['src']}...)"
            for i in self.images
            if not (i["complete"] and i["naturalWidth"] > 0)
        ]
        found += [f"console error: {message}" for message in self.console_errors]
        if self.scroll_width > self.client_width:
            found.append(
                f"the page overflows horizontally: {self.scroll_width} px of content in a "
                f"{self.client_width} px wide viewport; too wide: {', '.join(self.too_wide)}"
            )
        # the page does not overflow, but a reader would have to scroll a table to see it
        found += [f"a table scrolls sideways: {table}" for table in self.scrolled_tables]
        return found


def open_page(driver, path: Path, screenshot: Path) -> Page:
    """Load ``path`` (waiting for its load event, images included), look at it, and save a
    full-page screenshot to ``screenshot``."""
    driver.get_log("browser")  # drop what earlier pages logged
    driver.get(path.resolve().as_uri())
    state = driver.execute_script(PAGE_STATE)
    size = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    clip = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
    shot = driver.execute_cdp_cmd(
        "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True, "clip": clip}
    )
    screenshot.write_bytes(base64.b64decode(shot["data"]))
    errors = [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    return Page(
        images=state["images"],
        console_errors=errors,
        inner_width=state["innerWidth"],
        client_width=state["clientWidth"],
        scroll_width=state["scrollWidth"],
        too_wide=state["tooWide"],
        scrolled_tables=state["scrolledTables"],
        screenshot=screenshot,
    )


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


# ---------------------------------------------------------------------------------------
# The pipeline's report


@pytest.mark.slow
@pytest.mark.browser
def test_the_report_reads_well_in_a_browser(browser, run, tmp_path, capsys):
    page = open_page(browser, run.path("results/report/report.html"), tmp_path / "report.png")
    with capsys.disabled():
        print(f"\nscreenshot of the {run.kind} report at {WIDTH} px: {page.screenshot}")
    assert page.inner_width == WIDTH
    shown = sorted(image["alt"] for image in page.images)
    figures = figures_of(run)
    assert shown == sorted(Path(figure).stem for figure in figures), "each figure, once"
    assert page.problems() == []
    width, height = png_size(page.screenshot)
    assert width == page.client_width and height > HEIGHT  # the whole page, not one screen


# Each check fails on a page that breaks it (and only that check), and passes a clean page.
PIXEL = (  # a valid 1x1 PNG
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII="
)
BROKEN_PAGES = {
    "broken-image": (
        '<img alt="broken" src="data:image/png;base64,iVBORw0KGgo=">',
        "image 'broken' did not load",
    ),
    "missing-image": ('<img alt="missing" src="nowhere.png">', "image 'missing' did not load"),
    "console-error": ("<script>console.error('boom')</script>", "console error"),
    "script-exception": ("<script>undefined.x</script>", "console error"),
    "wide-element": ('<div style="width: 2000px">wide</div>', "the page overflows horizontally"),
    "wide-table": (
        '<div style="overflow-x: auto"><table><tr><th style="min-width: 2000px">x</th></tr>'
        "</table></div>",
        "a table scrolls sideways",
    ),
}


def _page(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "page.html"
    path.write_text(
        "<!doctype html><html><head><meta charset='utf-8'></head><body>"
        f"<p>Some text.</p><img alt='fine' src='data:image/png;base64,{PIXEL}'>{body}"
        "</body></html>"
    )
    return path


@pytest.mark.browser
def test_a_clean_page_passes_every_check(browser, tmp_path):
    page = open_page(browser, _page(tmp_path, ""), tmp_path / "page.png")
    assert [image["alt"] for image in page.images] == ["fine"]
    assert page.problems() == []


@pytest.mark.browser
@pytest.mark.parametrize("case", BROKEN_PAGES)
def test_each_check_fails_on_a_page_that_breaks_it(browser, tmp_path, case):
    body, expected = BROKEN_PAGES[case]
    problems = open_page(browser, _page(tmp_path, body), tmp_path / "page.png").problems()
    assert any(problem.startswith(expected) for problem in problems), problems
    if case != "missing-image":  # a missing file also logs "Failed to load resource"
        assert all(problem.startswith(expected) for problem in problems), problems


# ---------------------------------------------------------------------------------------
# Snakemake's report, from the README's main install


def readme_command(marker: str) -> str:
    """The code block after ``<!-- marker -->`` in README.md (as .ci/run reads it)."""
    lines = (REPO / "README.md").read_text().splitlines()
    start = lines.index(f"<!-- {marker} -->")
    fences = [i for i in range(start + 1, len(lines)) if lines[i].startswith("```")][:2]
    assert len(fences) == 2, f"README.md has no code block after <!-- {marker} -->"
    return "\n".join(lines[fences[0] + 1 : fences[1]]).strip()


def main_install_command() -> str:
    """The README's main command without its final ``&& .venv/bin/snakemake ...``."""
    command = readme_command("main-command")
    install, _, run = command.rpartition(" && ")
    assert install and run.startswith(".venv/bin/snakemake"), command
    return install


def clean_environment() -> dict[str, str]:
    """This process's environment less the test virtual environment, as in a fresh shell."""
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    own_bin = str(Path(sys.prefix) / "bin")
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if p != own_bin)
    return env


def _check(proc: subprocess.CompletedProcess, what: str) -> None:
    assert proc.returncode == 0, (
        f"{what} exited {proc.returncode}\n--- stdout ---\n{proc.stdout[-4000:]}\n"
        f"--- stderr ---\n{proc.stderr[-4000:]}"
    )


@pytest.fixture(scope="module")
def snakemake_report(synthetic_run, tmp_path_factory) -> tuple[Path, Path, Run]:
    """A copy of the finished synthetic run with the files the install reads, installed into
    its own .venv by the README's main command, which then builds ``report.zip`` there.
    Returns (the copy, the archive, the run). The install takes about a minute
    with pip's cache."""
    repo = tmp_path_factory.mktemp("main-install") / "repo"
    shutil.copytree(synthetic_run.workdir, repo, symlinks=True)
    for name in ("pyproject.toml", "README.md", "constraints.txt"):
        shutil.copy2(REPO / name, repo / name)
    install = main_install_command()
    env = clean_environment()
    proc = subprocess.run(
        ["bash", "-c", install], cwd=repo, env=env, capture_output=True, text=True, timeout=1500
    )
    _check(proc, f"the README's main install ({install})")
    configfiles = ["--configfile", "tests/config/config.yaml", "data.yaml"]
    cmd = [".venv/bin/snakemake", "--cores", "1", *configfiles, "--report", "report.zip"]
    proc = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=600)
    _check(proc, " ".join(cmd))
    return repo, repo / "report.zip", synthetic_run


def text_of(fragment: str) -> str:
    """The words of an HTML fragment, whitespace collapsed."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", fragment)).split())


def rst_text(path: Path) -> str:
    from docutils.core import publish_parts

    return text_of(publish_parts(path.read_text(), writer="html")["fragment"])


@pytest.mark.slow
def test_snakemake_report_from_the_main_install_holds_every_figure_with_its_caption(
    snakemake_report,
):
    repo, archive, run = snakemake_report
    figures = figures_of(run)
    with zipfile.ZipFile(archive) as zf:
        page = zf.read("report/report.html").decode()
        declared = re.search(r"^\s*var results = (\{.*\});\s*$", page, re.M)
        assert declared, "report/report.html declares no results (Snakemake's format changed?)"
        results = json.loads(declared.group(1))
        assert sorted(results) == sorted(figures)
        for figure, caption in figures.items():
            entry = results[figure]
            member = f"report/{entry['data_uri']}"
            assert member in zf.namelist(), f"{figure}: {member} is not in the archive"
            assert zf.read(member) == (repo / figure).read_bytes(), figure
            assert text_of(entry["caption"]) == rst_text(caption), figure


@pytest.mark.slow
@pytest.mark.browser
def test_snakemake_report_opens_in_a_browser(browser, snakemake_report, tmp_path):
    from selenium.webdriver.support.ui import WebDriverWait

    _, archive, run = snakemake_report
    categories = categories_of(run)
    with zipfile.ZipFile(archive) as zf:
        zf.extractall(tmp_path)
    page = open_page(browser, tmp_path / "report/report.html", tmp_path / "snakemake-report.png")

    def menu_lists_every_category(driver) -> bool:
        text = driver.find_element("tag name", "body").text
        return all(category in text for category in categories)

    # the page is drawn by its scripts after it loads
    WebDriverWait(browser, 30).until(menu_lists_every_category, f"no menu with {categories}")
    later = [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert page.console_errors + later == []
