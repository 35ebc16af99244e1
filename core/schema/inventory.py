"""Schema of the catalog, stock ledger, lots and purchase suggestions (component ``inventory``).

Append new migrations; never edit one that has shipped.
"""

MIGRATIONS: list[str] = []
