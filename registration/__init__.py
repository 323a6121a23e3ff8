"""The source contract: a registration file's model, parsing, validation and defaults, the
check and gate specs and the connector table. Imports only base, schemas and trust."""
from registration.files import (
    Problem,
    Scan,
    get,
    id_in,
    load,
    load_all,
    loaded,
    parse_text,
    pick,
    scan,
    scan_texts,
)
from registration.model import Registration
from registration.parse import parse
from registration.rules import CYCLES, DATASET_RE, ID_RE, SHARING

__all__ = ["CYCLES", "DATASET_RE", "ID_RE", "SHARING", "Problem", "Registration", "Scan", "get",
           "id_in", "load", "load_all", "loaded", "parse", "parse_text", "pick", "scan", "scan_texts"]
