"""Headless Chromium for the report's tests: Debian's chromium and chromium-driver, driven by
Selenium, with the network cut (offline, every host unresolvable, a dead proxy), so a page
that needed any other host would fail here. ``.ci/run`` installs both."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
needs_browser = pytest.mark.skipif(
    CHROMIUM is None or DRIVER is None,
    reason="no headless Chromium (apt-get install chromium chromium-driver)",
)

#: Every finite number each figure's glyphs draw (the x column aside), by figure title.
CHART_DATA = """
const out = [];
for (const fig of Bokeh.documents[0].roots()[0].children) {
  let points = 0;
  for (const r of fig.renderers) {
    const data = r.data_source ? r.data_source.data : {};
    for (const [name, column] of Object.entries(data)) {
      if (name === 't') continue;
      for (const v of column) if (typeof v === 'number' && isFinite(v)) points++;
    }
  }
  const shaded = fig.center.filter(a => a.type === 'BoxAnnotation').length;
  out.push({title: fig.title.text, points: points, shaded: shaded});
}
return out;
"""


@dataclass
class Page:
    """A report as the browser shows it."""

    driver: Any
    console: list[dict[str, Any]]
    requests: list[str]

    def text(self, css: str) -> list[str]:
        from selenium.webdriver.common.by import By  # noqa: PLC0415

        return [e.text for e in self.driver.find_elements(By.CSS_SELECTOR, css)]

    def section(self, title: str, shot: Path) -> str:
        """The text under the h2 ``title`` up to the next h2; its screenshot goes to ``shot``."""
        from selenium.webdriver.common.by import By  # noqa: PLC0415

        heading = self.driver.find_element(By.XPATH, f"//h2[starts-with(., {json.dumps(title)})]")
        following = heading.find_element(By.XPATH, "following-sibling::*[1]")
        following.screenshot(str(shot))
        return str(following.text)

    def charts(self) -> list[dict[str, Any]]:
        return list(self.driver.execute_script(CHART_DATA))

    def errors(self) -> list[str]:
        return [e["message"] for e in self.console if e.get("level") == "SEVERE"]


class Browser:
    def __init__(self, *, offline: bool = True) -> None:
        """Chromium with every host unresolvable and a dead proxy; ``offline`` (the report's
        tests): no network at all, loopback included (the live page's tests need loopback)."""
        from selenium import webdriver  # noqa: PLC0415
        from selenium.webdriver.chrome.options import Options  # noqa: PLC0415
        from selenium.webdriver.chrome.service import Service  # noqa: PLC0415

        options = Options()
        for arg in (
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--window-size=1400,1000",
            "--proxy-server=127.0.0.1:9",  # nothing listens there
            # Every name unresolvable; an address on loopback (the live page's) reachable.
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        ):
            options.add_argument(arg)
        assert CHROMIUM is not None
        options.binary_location = CHROMIUM
        options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
        self.driver = webdriver.Chrome(service=Service(DRIVER), options=options)
        self.driver.set_page_load_timeout(60)
        self.driver.execute_cdp_cmd("Network.enable", {})
        if offline:
            self.driver.execute_cdp_cmd(
                "Network.emulateNetworkConditions",
                {"offline": True, "latency": 0, "downloadThroughput": 0, "uploadThroughput": 0},
            )

    def open(self, path: Path | str, shot: Path) -> Page:
        """``path`` (a file, or a URL) loaded and drawn (Bokeh says its document is idle),
        screenshot to ``shot``."""
        from selenium.webdriver.support.ui import WebDriverWait  # noqa: PLC0415

        self.driver.get_log("browser")  # what earlier pages said is theirs
        self.driver.get_log("performance")
        self.driver.get(path if isinstance(path, str) else path.resolve().as_uri())
        console: list[dict[str, Any]] = []

        def drawn(driver: Any) -> bool:
            console.extend(driver.get_log("browser"))
            return any("document idle" in e["message"] for e in console)

        WebDriverWait(self.driver, 60, poll_frequency=0.2).until(drawn)
        height = self.driver.execute_script("return document.body.scrollHeight")
        self.driver.set_window_size(1400, min(int(height) + 100, 16000))
        self.driver.save_screenshot(str(shot))
        return Page(self.driver, console, self.requests())

    def requests(self) -> list[str]:
        """The URLs the page asked for since the last call."""
        requests = []
        for entry in self.driver.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            if message["method"] == "Network.requestWillBeSent":
                requests.append(message["params"]["request"]["url"])
        return requests

    def close(self) -> None:
        self.driver.quit()


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if CHROMIUM is None or DRIVER is None:
        pytest.skip("no headless Chromium (apt-get install chromium chromium-driver)")
    made = Browser()
    try:
        yield made
    finally:
        made.close()
