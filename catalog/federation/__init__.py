"""Federation: mirroring other exchanges' signed datasets (docs/federation.md)."""
