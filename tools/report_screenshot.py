"""The documentation's picture of report.html: a run's report opened in the browser the
report's tests use (tests/browser.py: headless Chromium, no network), drawn, and its top
shot as a PNG.

python tools/report_screenshot.py RUN_DIR docs/img/report.png [--height 1500]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent.parent))

from tests.browser import Browser


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--height", type=int, default=1500, help="pixels of the page shot")
    args = parser.parse_args()
    browser = Browser()
    try:
        browser.open(args.run_dir / "report.html", args.out)  # drawn (Bokeh idle)
        browser.driver.set_window_size(1400, args.height)
        browser.driver.execute_script("window.scrollTo(0, 0)")
        browser.driver.save_screenshot(str(args.out))
    finally:
        browser.close()
    print(f"{args.out}: {args.out.stat().st_size:,} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
