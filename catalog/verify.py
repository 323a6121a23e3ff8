"""Bundle verification lives in trust/verify.py (the verifier that ships alone); re-exported here."""
from trust.verify import (CHECKED_FIELDS, FORMAT, KEY_STATUS_FILE, OFFLINE_STEPS, VERIFY_STEPS,  # noqa: F401
                          VerifiedBundle, compromised_keys, head_payload_unverified, label_unsigned,
                          make_bundle, read_key_status, unsigned_fields, verify_bundle, verify_tree_head)
