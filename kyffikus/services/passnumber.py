"""Pass numbers for typing at a till: 9 random symbols and a check symbol, grouped 4-4-2.

The alphabet has 31 symbols (a prime), and the check makes sum((i + 1) * value_i) ≡ 0 (mod 31)
over all ten symbols. Because 31 is prime and the weights 1..10 differ, any single wrong symbol
and any swap of two different neighbours changes the sum: both are always caught. The same rule
is implemented in kyffikus/static/js/passnumber.js for checking before any request is sent.
"""

from __future__ import annotations

import secrets

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXY"
MODULUS = len(ALPHABET)  # 31, prime
LENGTH = 10
_VALUE = {c: i for i, c in enumerate(ALPHABET)}
# Symbols people confuse with ones in the alphabet.
_CONFUSABLE = str.maketrans({"O": "0", "I": "1", "L": "1", "Z": "2", "U": "V"})
_SEPARATORS = str.maketrans("", "", " -.\u00a0\t")


def normalise(text: str) -> str:
    """Upper-case, drop separators and map confusable letters; may still be invalid."""
    return text.translate(_SEPARATORS).upper().translate(_CONFUSABLE)


def _weighted_sum(symbols: str) -> int:
    return sum((i + 1) * _VALUE[c] for i, c in enumerate(symbols))


def check_symbol(data: str) -> str:
    """The check symbol for nine data symbols."""
    if len(data) != LENGTH - 1 or any(c not in _VALUE for c in data):
        raise ValueError("nine symbols of the pass-number alphabet expected")
    partial = _weighted_sum(data)
    # Solve partial + LENGTH * c ≡ 0 (mod 31): c = -partial * LENGTH^-1.
    inverse = pow(LENGTH, -1, MODULUS)
    return ALPHABET[(-partial * inverse) % MODULUS]


def is_valid(text: str) -> bool:
    """Whether the text is a well-formed pass number with the right check symbol."""
    number = normalise(text)
    if len(number) != LENGTH or any(c not in _VALUE for c in number):
        return False
    return _weighted_sum(number) % MODULUS == 0


def parse(text: str) -> str | None:
    """The canonical number for a typed one, or None when it is malformed or the check fails."""
    if not isinstance(text, str) or len(text) > 40:
        return None
    number = normalise(text)
    return number if is_valid(number) else None


def generate() -> str:
    """A new random pass number (uniqueness is enforced by the database)."""
    data = "".join(secrets.choice(ALPHABET) for _ in range(LENGTH - 1))
    return data + check_symbol(data)


def format_number(number: str) -> str:
    """Group a canonical number as 4-4-2 for print and screen."""
    return f"{number[:4]}-{number[4:8]}-{number[8:]}"
