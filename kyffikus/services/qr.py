"""QR codes: the pass URL <BASE_URL>/v/<token> as a PNG, an SVG, or a module matrix for the PDF."""

from __future__ import annotations

import hashlib
import io

import qrcode
import qrcode.constants
from qrcode.image.svg import SvgPathFillImage

# M (15 %) survives a scratched card or a dim phone screen and keeps the code small.
ERROR_CORRECTION = qrcode.constants.ERROR_CORRECT_M
QUIET_ZONE = 4  # modules of white border the standard asks for


def _code(data: str, box_size: int = 10) -> qrcode.QRCode:
    code = qrcode.QRCode(error_correction=ERROR_CORRECTION, box_size=box_size, border=QUIET_ZONE)
    code.add_data(data)
    code.make(fit=True)
    return code


def qr_png(data: str, *, box_size: int = 10) -> bytes:
    """A black-on-white PNG of the QR code (with its quiet zone)."""
    image = _code(data, box_size).make_image(fill_color="black", back_color="white")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def qr_svg(data: str) -> str:
    """The QR code as a standalone SVG document (one path, white background)."""
    image = _code(data).make_image(image_factory=SvgPathFillImage)
    buffer = io.BytesIO()
    image.save(buffer)
    return buffer.getvalue().decode("utf-8")


def qr_matrix(data: str) -> list[list[bool]]:
    """The modules, quiet zone included: True is dark (for drawing vector squares in the PDF)."""
    return _code(data).get_matrix()


def qr_etag(data: str) -> str:
    """A validator for caching: changes exactly when the encoded URL changes."""
    return hashlib.sha256(data.encode("utf-8")).hexdigest()[:32]
