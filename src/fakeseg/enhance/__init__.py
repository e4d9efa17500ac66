"""Heat-map-guided enhancement (``fakeseg enhance``): a refiner G trained against a frozen
FakeSegment critic, a blend of the user's own enhanced frames, and verification by judges G
never trained against."""
