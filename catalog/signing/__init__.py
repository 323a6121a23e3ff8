"""The writer side of the trust core: canonical bytes in bulk, digests, Merkle trees, signing
keys. No database."""
