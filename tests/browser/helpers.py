"""Helpers for the browser tests: the fake camera's video, axe, the request log and page weight."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from PIL import Image

HERE = Path(__file__).resolve().parent
AXE_JS = HERE / "vendor" / "axe-core-4.14.1" / "axe.min.js"
LOCAL_HOSTS = frozenset({"127.0.0.1"})


# ---- the fake camera ----------------------------------------------------------------------------


def camera_frame(
    code: Image.Image, size: tuple[int, int] = (640, 480), side: int = 360
) -> Image.Image:
    """The code centred on a light grey background, as a phone camera would see it on a counter."""
    width, height = size
    frame = Image.new("RGB", size, (205, 205, 205))
    scaled = code.convert("RGB").resize((side, side), Image.Resampling.NEAREST)
    frame.paste(scaled, ((width - side) // 2, (height - side) // 2))
    return frame


def write_y4m(path: Path, frames: list[Image.Image], fps: int = 10) -> Path:
    """Write frames as a Y4M video (YUV 4:2:0, 'C420jpeg'), the format Chromium's fake camera reads.

    A Y4M file is one text header line, then per frame "FRAME\\n" and the raw Y plane (full size)
    and the U and V planes (half width, half height).
    """
    width, height = frames[0].size
    assert width % 2 == 0, "4:2:0 needs an even width"
    assert height % 2 == 0, "4:2:0 needs an even height"
    with path.open("wb") as out:
        out.write(f"YUV4MPEG2 W{width} H{height} F{fps}:1 Ip A1:1 C420jpeg\n".encode("ascii"))
        for frame in frames:
            y, u, v = frame.convert("YCbCr").split()
            half = (width // 2, height // 2)
            out.write(b"FRAME\n")
            out.write(y.tobytes())
            out.write(u.resize(half, Image.Resampling.BILINEAR).tobytes())
            out.write(v.resize(half, Image.Resampling.BILINEAR).tobytes())
    return path


def qr_video(path: Path, code: Image.Image, count: int = 20) -> Path:
    """A short looping video of the QR code: the first frames blank (the camera 'moving'), then the code."""
    blank = Image.new("RGB", (640, 480), (205, 205, 205))
    shown = camera_frame(code)
    # Two blank frames first: the decoder must keep scanning until a code appears.
    frames = [blank, blank] + [shown] * (count - 2)
    return write_y4m(path, frames)


# ---- axe ----------------------------------------------------------------------------------------


@cache
def axe_source() -> str:
    """The vendored axe-core, read once."""
    return AXE_JS.read_text(encoding="utf-8")


def run_axe(page: Any) -> list[dict[str, Any]]:
    """Run axe-core on the page and return its violations.

    The page's CSP allows only its own nonce'd scripts, so a <script> tag (add_script_tag) would
    be blocked; page.evaluate runs through the DevTools protocol, which CSP does not govern.
    """
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.evaluate(axe_source())
    result = page.evaluate(
        """() => axe.run(document, {
            runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa',
                                            'best-practice']},
            resultTypes: ['violations'],
        })"""
    )
    return list(result["violations"])


# Rules below serious that fail a page as well: each was found once and fixed, and axe decides
# them from the markup alone, so they cannot fail by chance (landmark-unique: two regions named
# alike, once on the provider's account and the staff statistics).
ASSERTED_BELOW_SERIOUS = frozenset({"landmark-unique"})


def failing(violations: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The violations that fail a page: impact serious or critical, or a rule asserted below it."""
    return [
        v
        for v in violations
        if v.get("impact") in ("serious", "critical") or v["id"] in ASSERTED_BELOW_SERIOUS
    ]


def describe_violations(violations: list[dict[str, Any]]) -> str:
    """One line per violation and node: rule, impact, target selector and axe's summary."""
    lines = []
    for v in violations:
        for node in v["nodes"]:
            summary = (node.get("failureSummary") or "").replace("\n", " ")
            lines.append(f"  [{v['impact']}] {v['id']}: {node['target']} {summary[:240]}")
    return "\n".join(lines)


# ---- requests and page weight -------------------------------------------------------------------


@dataclass
class RequestLog:
    """Every request the browser makes for a page, and those that leave 127.0.0.1.

    Playwright delivers request events asynchronously, so one may arrive while the next page is
    already loading; the log is therefore kept for the whole run and checked as a whole, while
    each page's own resources are checked through the Resource Timing API (page_transfers).
    """

    requests: list[str] = field(default_factory=list)
    foreign: list[str] = field(default_factory=list)

    def attach(self, page: Any) -> RequestLog:
        """Listen to the page's requests."""
        page.on("request", self._on_request)
        return self

    def _on_request(self, request: Any) -> None:
        url = request.url
        self.requests.append(f"{request.method} {url}")
        if not is_local(url):
            self.foreign.append(url)


def is_local(url: str) -> bool:
    """Whether a URL stays on this machine: http(s)/ws(s) to 127.0.0.1, or no network at all.

    data: and blob: URLs, and the browser's own chrome:// and chrome-extension:// pages (its PDF
    viewer), never reach a network.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https", "ws", "wss"):
        return True
    return parts.hostname in LOCAL_HOSTS


@dataclass
class Transfer:
    """One loaded file: URL, bytes on the wire (headers + body as sent) and the decoded body size."""

    url: str
    transfer: int
    encoded: int
    decoded: int
    kind: str

    @property
    def compressed(self) -> bool:
        """Whether the body came compressed (sent smaller than it is)."""
        return self.encoded < self.decoded


_TRANSFERS_JS = """() => {
  const pick = (e, kind) => ({url: e.name, transfer: e.transferSize, encoded: e.encodedBodySize,
                              decoded: e.decodedBodySize, kind: kind});
  return performance.getEntriesByType('navigation').map(e => pick(e, 'document'))
    .concat(performance.getEntriesByType('resource').map(e => pick(e, e.initiatorType)));
}"""


def page_transfers(page: Any) -> list[Transfer]:
    """The document and every file it loaded, from the browser's Resource Timing entries.

    transferSize counts the response headers and the body as it came over the wire (gzip-compressed
    when the server compressed it), which is what "page weight" means; the browser cache must be
    off for it to be the first visit's weight.
    """
    return [Transfer(**entry) for entry in page.evaluate(_TRANSFERS_JS)]


def weight(transfers: list[Transfer]) -> int:
    """Bytes transferred for a page and everything it loaded."""
    return sum(t.transfer for t in transfers)


def uncompressed_text(transfers: list[Transfer]) -> list[str]:
    """Larger text files (HTML, CSS, JS, SVG, JSON) that came without compression."""
    text_kinds = ("document", "link", "script", "css", "fetch", "xmlhttprequest")
    return [
        t.url for t in transfers if t.kind in text_kinds and not t.compressed and t.decoded > 1000
    ]


def kb(n: int) -> str:
    """Bytes as KB with one decimal."""
    return f"{n / 1024:.1f}"
