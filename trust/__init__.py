"""The exchange's trust core: canonical bytes, RFC 9162 hashes, tree-head constants and offline
bundle verification. Pure: the standard library, rfc8785, joserfc and cryptography only, so it
installs alone as the consuming departments' verifier (verifier/pyproject.toml)."""
