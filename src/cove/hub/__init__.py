"""Client side of the hub protocol: resolving names to local folders, cache, download, upload."""
