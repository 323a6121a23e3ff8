"""What the catalogue keeps of a source's registration: the caller (exchange) builds it."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SourceListing:
    source: str                 # the source id
    dataset: str
    certificate_type: str
    type_version: int           # the certificate type's version the records conform to
    title: str
    steward: str
    description: str | None
    department: str
    department_name: str | None
    sharing: str
    update_cycle: str
    connector_kind: str
    registration: dict          # the registration as a JSON-able dict (sources.registration)
    source_file: str | None = None
    toml: str | None = None     # the registration's text, to store (catalog/registrations.py)

    def metadata(self) -> dict:
        """The stewarded metadata (service.METADATA), as the dataset row keeps it."""
        return {"title": self.title, "steward": self.steward, "description": self.description or None,
                "department": self.department, "department_name": self.department_name or None,
                "sharing": self.sharing, "update_cycle": self.update_cycle}
