"""A registration in the small form the catalogue keeps (catalog.listing.SourceListing)."""
from __future__ import annotations

from catalog.listing import SourceListing
from registration import Registration


def source_listing(reg: Registration, toml: str | None = None) -> SourceListing:
    """`toml`: the registration's text, stored with it (registering); None leaves the stored
    text as it is (a run)."""
    return SourceListing(
        source=reg.id, dataset=reg.dataset, certificate_type=reg.certificate_type,
        type_version=reg.ctype.version, title=reg.title, steward=reg.steward,
        description=reg.description, department=reg.department,
        department_name=reg.department_name, sharing=reg.sharing, update_cycle=reg.update_cycle,
        connector_kind=reg.connector["kind"], registration=reg.as_dict(),
        source_file=reg.source_file, toml=toml)
