"""EPC Tag Data Standard: SGTIN-96 encode/decode and GTIN-14 check digits.

Used by the ingest adapters (tag reads), the rules (EPC -> GTIN -> SKU) and the simulators.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.errors import EpcError

SGTIN96_HEADER = 0x30
# partition -> (company prefix bits, company prefix digits, item reference bits, item digits)
_PARTITIONS = {
    0: (40, 12, 4, 1),
    1: (37, 11, 7, 2),
    2: (34, 10, 10, 3),
    3: (30, 9, 14, 4),
    4: (27, 8, 17, 5),
    5: (24, 7, 20, 6),
    6: (20, 6, 24, 7),
}


@dataclass(frozen=True, slots=True)
class Sgtin:
    """A decoded SGTIN-96."""

    filter: int
    company_prefix: str
    item_reference: str
    serial: int

    @property
    def gtin(self) -> str:
        """GTIN-14: indicator digit, company prefix, rest of the item reference, check digit."""
        body = self.item_reference[0] + self.company_prefix + self.item_reference[1:]
        return body + str(gtin_check_digit(body))

    @property
    def uri(self) -> str:
        """The pure-identity URI, e.g. ``urn:epc:id:sgtin:0614141.812345.12345``."""
        return f"urn:epc:id:sgtin:{self.company_prefix}.{self.item_reference}.{self.serial}"


def gtin_check_digit(digits: str) -> int:
    """GS1 mod-10 check digit for the 13 (or fewer) leading digits of a GTIN."""
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(digits)))
    return (10 - total % 10) % 10


def is_sgtin96(epc_hex: str) -> bool:
    """True when the hex EPC carries the SGTIN-96 header."""
    return len(epc_hex) == 24 and epc_hex[:2] == "30"


def decode_sgtin96(epc_hex: str) -> Sgtin:
    """Decode a 24-hex-digit SGTIN-96 EPC."""
    if len(epc_hex) != 24:
        raise EpcError(f"EPC {epc_hex!r} is not 96 bits (24 hex digits)")
    try:
        value = int(epc_hex, 16)
    except ValueError:
        raise EpcError(f"EPC {epc_hex!r} is not hexadecimal") from None
    if value >> 88 != SGTIN96_HEADER:
        raise EpcError(f"EPC {epc_hex!r} header {value >> 88:#04x} is not SGTIN-96 (0x30)")
    filter_value = (value >> 85) & 0x7
    partition = (value >> 82) & 0x7
    if partition not in _PARTITIONS:
        raise EpcError(f"EPC {epc_hex!r} has invalid partition {partition}")
    company_bits, company_digits, item_bits, item_digits = _PARTITIONS[partition]
    company = (value >> (82 - company_bits)) & ((1 << company_bits) - 1)
    item = (value >> 38) & ((1 << item_bits) - 1)
    serial = value & ((1 << 38) - 1)
    if company >= 10**company_digits or item >= 10**item_digits:
        raise EpcError(f"EPC {epc_hex!r} has a company prefix or item reference out of range")
    return Sgtin(
        filter=filter_value,
        company_prefix=str(company).zfill(company_digits),
        item_reference=str(item).zfill(item_digits),
        serial=serial,
    )


def encode_sgtin96(
    gtin14: str, serial: int, *, company_digits: int = 7, filter_value: int = 1
) -> str:
    """Encode a GTIN-14 and serial as SGTIN-96 hex (upper case)."""
    if len(gtin14) != 14 or not gtin14.isdigit():
        raise EpcError(f"GTIN {gtin14!r} must be 14 digits")
    if gtin_check_digit(gtin14[:13]) != int(gtin14[13]):
        raise EpcError(f"GTIN {gtin14!r} has a wrong check digit")
    partition = next((p for p, spec in _PARTITIONS.items() if spec[1] == company_digits), None)
    if partition is None:
        raise EpcError(f"company prefix length {company_digits} is not 6..12")
    company_bits, _, item_bits, _ = _PARTITIONS[partition]
    company = int(gtin14[1 : 1 + company_digits])
    item = int(gtin14[0] + gtin14[1 + company_digits : 13])
    if not 0 <= serial < 1 << 38:
        raise EpcError(f"serial {serial} does not fit in 38 bits")
    value = SGTIN96_HEADER
    value = (value << 3) | filter_value
    value = (value << 3) | partition
    value = (value << company_bits) | company
    value = (value << item_bits) | item
    value = (value << 38) | serial
    return f"{value:024X}"
