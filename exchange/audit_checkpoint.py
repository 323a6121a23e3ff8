"""Making an audit checkpoint with this exchange's settings (`exchange audit-checkpoint`, and the
`exchange_watch` DAG every 15 minutes): sign the audit chain's head with the active key and
make sure the published JWKS holds that key."""
from __future__ import annotations

import json
from datetime import datetime

from base.settings import get_settings
from catalog.publish.key_status import check_signer, key_material
from catalog.service import Catalog
from catalog.serving.audit_checkpoints import make
from catalog.signing.keys import keystore_for


def make_checkpoint(now: datetime, settings=None) -> dict:
    s = settings or get_settings()
    engine = Catalog(s.catalog_url, s.store).engine
    keys = keystore_for(s)
    check_signer(keys, engine, s.jwks_path)     # the catalogue's active key (published there if new)
    material = key_material(engine)
    return make(engine, keys, now, jwks=json.loads(material[0]) if material else None)
