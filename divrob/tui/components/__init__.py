"""One screen or widget per module; screens reach the data only through `DivrobAdapter`."""
