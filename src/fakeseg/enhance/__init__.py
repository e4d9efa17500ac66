"""Heat-map-guided enhancement (``fakeseg enhance``): a refiner G trained against a frozen
FakeSegment critic, a blend of the user's own enhanced frames, and verification by judges G
never trained against."""

#: "auto": the judges' feature spaces come from the other installed ImageNet family than the
#: critic's (:func:`judge_spaces`); here, torch-free, so ``fakeseg --help`` stays light
DEFAULT_ORACLE_BACKBONE = "auto"
DEFAULT_FD_FEATURES = "auto"


def judge_spaces(critic_backbone: str) -> tuple[str, str]:
    """(pair-oracle backbone, Fréchet-distance trunk) outside the critic's network family.

    The installed pretrained families are EfficientNet-Lite0 and MobileNetV2 (the
    ``ssdlite_mobilenet_v2`` features run on ImageNet MobileNetV2 weights offline), so a
    critic on one is judged in the other. The refiner's own feature losses use the critic's
    backbone (``EnhanceConfig.style_backbone="auto"``), so no judge shares a space with them.
    """
    if "+" in critic_backbone:  # features.backbones.CONCAT, kept torch-free here
        from fakeseg.errors import FakesegError

        raise FakesegError(f"the critic's backbone {critic_backbone} spans both installed "
                           "families, so no judge would be independent of it; pass "
                           "--oracle-backbone and --fd-features yourself, or use a critic "
                           "trained on one backbone")
    if critic_backbone.startswith("efficientnet"):
        return "ssdlite_mobilenet_v2", "mobilenet_v2"
    return "efficientnet_lite0", "efficientnet_lite0"
