"""Heat-map-guided enhancement (``fakeseg enhance``): a refiner G trained against a frozen
FakeSegment critic, a blend of the user's own enhanced frames, and verification by judges G
never trained against."""

#: the judges' default feature spaces (here, torch-free, so ``fakeseg --help`` stays light)
DEFAULT_ORACLE_BACKBONE = "efficientnet_lite0"
DEFAULT_FD_FEATURES = "efficientnet_lite0"
