"""Open a page from disk in headless Chromium (Debian's `chromium` package) and read back what it shows.

`make test` installs Chromium when it is missing and the machine allows (`.ci/ensure-chromium`); without it the
browser tests skip, except under `.ci/run` (LR0FM_REQUIRE_BROWSER=1), where a missing browser fails. Chromium is
driven from its command line: `--dump-dom` after the page's load handlers ran (a report page records failed
images and script errors on <body>), console messages from `--enable-logging=stderr`, and `--screenshot`.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
#: a console message in Chromium's log (any level: the page itself logs nothing)
CONSOLE = re.compile(r":CONSOLE[:(]")


def find_chromium() -> str:
    """The Chromium binary (``LR0FM_CHROMIUM`` or the first of :data:`BROWSERS` on ``PATH``), else skip/fail."""
    for name in (os.environ.get("LR0FM_CHROMIUM"), *BROWSERS):
        if name and shutil.which(name):
            return shutil.which(name)
    reason = (
        "no Chromium on this machine: `make test` installs Debian's chromium when run as root (or with "
        "password-less sudo); else `apt-get install chromium`, or set LR0FM_CHROMIUM to a Chromium binary"
    )
    if os.environ.get("LR0FM_REQUIRE_BROWSER"):
        pytest.fail(reason)
    pytest.skip(reason)


class PageFacts(HTMLParser):
    """What the dumped DOM holds: <body> attributes, figures, tables, image sources, sections."""

    def __init__(self) -> None:
        super().__init__()
        self.body: dict[str, str] = {}
        self.figures: list[str] = []
        self.tables: list[str] = []
        self.images: list[str] = []
        self.sections: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = {k: v or "" for k, v in attrs}
        if tag == "body":
            self.body = attrs
        elif tag == "figure" and "data-figure" in attrs:
            self.figures.append(attrs["data-figure"])
        elif tag == "table" and "data-table" in attrs:
            self.tables.append(attrs["data-table"])
        elif tag == "img":
            self.images.append(attrs.get("src", ""))
        elif tag == "section" and "data-section" in attrs:
            self.sections.append(attrs["data-section"])


def open_in_chromium(page: Path, screenshot: Path, profile: Path) -> tuple[PageFacts, list[str]]:
    """Load ``page`` from disk in headless Chromium; return the DOM's facts and the console messages."""
    command = [
        find_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", f"--user-data-dir={profile}",
        "--enable-logging=stderr", "--v=0", "--virtual-time-budget=10000", "--window-size=1280,2400",
        f"--screenshot={screenshot}", "--dump-dom", page.resolve().as_uri(),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    facts = PageFacts()
    facts.feed(done.stdout)
    assert facts.body, f"Chromium returned no page (exit {done.returncode}):\n{done.stderr[-2000:]}"
    return facts, [line for line in done.stderr.splitlines() if CONSOLE.search(line)]
