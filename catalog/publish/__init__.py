"""Publishing a version: staging its files, loading its index, what changed, the chain of
heads, key status."""
