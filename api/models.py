"""API models (pydantic) of certificate types, derived from their one definition (schemas/types.py).
No route declares one: a route answers records of any type, wrapped (a bundle, a lookup)."""
from __future__ import annotations

import datetime
from functools import cache
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from schemas.types import CertificateType, get_type

_PY = {"string": str, "date": datetime.date, "int": int, "bool": bool}


@cache
def record_model(type_name: str) -> type[BaseModel]:
    """The model of a published record of `type_name` (its fields plus record_id)."""
    ctype: CertificateType = get_type(type_name)
    fields = {}
    for f in ctype.fields:
        typ = Literal[f.in_set] if f.in_set else _PY[f.type]
        if f.required:
            fields[f.name] = (typ, Field(description=f.title))
        else:
            fields[f.name] = (typ | None, Field(default=None, description=f.title))
    fields["record_id"] = (str, Field(description="the exchange's record id"))
    name = "".join(p.title() for p in ctype.name.split("_")) + f"V{ctype.version}"
    return create_model(name, __config__=ConfigDict(extra="forbid", title=f"{ctype.title_en} ({ctype.title})"),
                        **fields)
