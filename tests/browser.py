"""Debian's chromium, headless, for checking self-contained HTML pages: a screenshot, the page's
console messages, and which SVG labels fall outside their chart.

``scripts/install-deps.sh chromium`` installs it; the tests that need it skip without it, naming
that command.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

CHROMIUM = shutil.which("chromium")
MISSING = "needs Debian's chromium: sudo bash scripts/install-deps.sh chromium"

_CLIPPED_PROBE = """<script>
const clipped = [];
for (const svg of document.querySelectorAll('svg')) {
  const box = svg.getBoundingClientRect();
  for (const text of svg.querySelectorAll('text')) {
    const b = text.getBoundingClientRect();
    if (b.left < box.left - 0.5 || b.top < box.top - 0.5 || b.right > box.right + 0.5
        || b.bottom > box.bottom + 0.5) clipped.push(text.textContent);
  }
}
document.body.setAttribute('data-clipped', JSON.stringify(clipped));
</script>"""


def _chromium(*args: str, width: int, height: int) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None, MISSING
    sandbox = ["--no-sandbox"] if os.geteuid() == 0 else []  # chromium refuses root otherwise
    return subprocess.run([CHROMIUM, "--headless", *sandbox, "--disable-gpu", "--hide-scrollbars",
                           f"--window-size={width},{height}", "--enable-logging=stderr", "--v=0", *args],
                          capture_output=True, text=True, timeout=120, check=True)


def screenshot(page: Path, png: Path, *, width: int = 1000, height: int = 4000) -> list[str]:
    """Render ``page`` to ``png``; return the page's console messages (chromium's CONSOLE lines)."""
    run = _chromium(f"--screenshot={png}", page.resolve().as_uri(), width=width, height=height)
    return [line for line in run.stderr.splitlines() if re.search(r":CONSOLE[:(]", line)]


def clipped_labels(page: Path, scratch: Path, *, width: int = 1000) -> list[str]:
    """The texts of every SVG ``<text>`` of ``page`` whose box leaves its SVG's box, as laid out
    by the browser (a copy of the page with a probe script is loaded; the page is not changed)."""
    probe = scratch / f"probe-{page.name}"
    probe.write_text(page.read_text(encoding="utf-8").replace("</body>", _CLIPPED_PROBE + "</body>"),
                     encoding="utf-8")
    dom = _chromium("--dump-dom", probe.resolve().as_uri(), width=width, height=3000).stdout
    found = re.search(r'data-clipped="([^"]*)"', dom)
    assert found is not None, "the probe did not run"
    clipped: list[str] = json.loads(html.unescape(found.group(1)))
    return clipped


def png_size(png: Path) -> tuple[int, int]:
    """``(width, height)`` from a PNG's IHDR chunk."""
    header = png.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n", f"{png} is not a PNG"
    return int.from_bytes(header[16:20], "big"), int.from_bytes(header[20:24], "big")
