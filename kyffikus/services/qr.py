"""QR codes: the pass URL <BASE_URL>/v/<token> as a PNG, an SVG, or a module matrix for the PDF."""

from __future__ import annotations

import hashlib
import hmac
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


# Raise when the image changes for the same URL (size, error correction), so browsers fetch it anew.
QR_IMAGE_VERSION = "1"


def qr_etag(secret_key: str | bytes, session_user: str, pass_id: int, base_url: str) -> str:
    """The ETag of a pass's QR image as one session sees it: an HMAC, no database needed.

    A pass's token never changes (a lost pass gets a new pass), so the image of a pass id is fixed
    by the base URL and QR_IMAGE_VERSION. Binding the tag to the session's user id and version
    ("<id>:<version>") means only a session that was shown the image can present its tag: a repeat
    with it can be answered 304 straight from the signed session cookie, before any query. A 304
    carries no body, so even a stale session learns nothing it did not already have.
    """
    key = secret_key.encode("utf-8") if isinstance(secret_key, str) else secret_key
    message = f"qr-etag|{QR_IMAGE_VERSION}|{session_user}|{pass_id}|{base_url}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()[:32]
