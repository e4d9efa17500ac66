"""Baselines: the shared contract, ManTraNet's building blocks, overfitting, the registry."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fakeseg.errors import FakesegError
from fakeseg.io import LUMA_WEIGHTS
from fakeseg.models.base import Segmenter
from fakeseg.models.baselines.catnet import BlockDCT, one_hot_magnitudes
from fakeseg.models.baselines.mantranet import BayarConv2d, SRMConv2d, zscore_pool
from fakeseg.models.registry import MODELS, baseline_names, build_model

TINY: dict[str, dict[str, object]] = {
    "unet_rgb": {"encoder_depth": 3, "decoder_channels": (32, 16, 8)},
    "mantranet": {"width": 8, "blocks": 2, "plain_channels": 4, "feature_channels": 16,
                  "adapt_channels": 8, "lstm_hidden": 4, "lstm_kernel": 3},
    "mag": {"width": 8, "depth": 2, "disc_width": 8, "disc_depth": 2},
    "catnet": {"dct_channels": 16, "plane_channels": 4, "decoder_channels": (16, 8, 8)},
}
NETWORKS = sorted(TINY)


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """Tiny models run fastest on one thread, and stay fast when the cores are busy."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny(name: str, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return build_model({"model": name, "model_options": TINY[name]})


def composite(size: int = 32, batch: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Left half blocky/noisy 'synthetic', right half smooth 'real'; mask = left half."""
    rng = np.random.default_rng(0)
    smooth = np.linspace(0.2, 0.8, size, dtype=np.float32)
    image = np.stack([np.add.outer(smooth, smooth[::-1]) / 2] * 3).astype(np.float32)
    blocks = rng.random((3, size // 4, size // 8)).repeat(4, 1).repeat(4, 2)
    noise = rng.normal(0, 0.15, (3, size, size // 2))
    image[:, :, : size // 2] = np.clip(0.5 * blocks + 0.5 * image[:, :, : size // 2] + noise,
                                       0, 1)
    mask = np.zeros((1, size, size), np.float32)
    mask[:, :, : size // 2] = 1
    return (torch.from_numpy(image)[None].repeat(batch, 1, 1, 1),
            torch.from_numpy(mask)[None].repeat(batch, 1, 1, 1))


def dice(logits: torch.Tensor, mask: torch.Tensor) -> float:
    pred = torch.sigmoid(logits).detach().numpy() >= 0.5
    target = mask.numpy() > 0.5
    return float(2 * (pred & target).sum() / (pred.sum() + target.sum() + 1e-9))


def total_loss(model: Segmenter, image: torch.Tensor, label: torch.Tensor,
               logits: torch.Tensor) -> torch.Tensor:
    loss = F.binary_cross_entropy_with_logits(logits, label)
    if model.has_auxiliary_loss:
        loss = loss + model.auxiliary_loss(image, label, logits)[0]
    return loss


@pytest.mark.parametrize("name", NETWORKS)
def test_output_shapes(name: str) -> None:
    model = tiny(name).eval()
    side = 4 * model.multiple if model.multiple > 1 else 32
    with torch.no_grad():
        assert model(torch.rand(2, 3, side, side)).shape == (2, 1, side, side)
        assert model.forward_any_size(torch.rand(1, 3, 17, 33)).shape == (1, 1, 17, 33)


def test_mantranet_stride_and_half_precision() -> None:
    torch.manual_seed(0)
    model = build_model({"model": "mantranet",
                         "model_options": {**TINY["mantranet"], "stride": 2}}).eval()
    assert model.multiple == 2
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model.forward_any_size(torch.rand(1, 3, 17, 33))
    assert logits.shape == (1, 1, 17, 33) and torch.isfinite(logits).all()


@pytest.mark.parametrize("name", ["unet_rgb", "mag", "catnet"])
def test_forward_rejects_bad_size(name: str) -> None:
    with pytest.raises(ValueError, match="forward_any_size"):
        tiny(name)(torch.rand(1, 3, 17, 33))


@pytest.mark.parametrize("name", NETWORKS)
def test_gradients_reach_every_trainable_parameter(name: str) -> None:
    model = tiny(name).train()
    image, label = composite(batch=2)
    total_loss(model, image, label, model(image)).backward()
    trainable = model.trainable_parameters()
    assert trainable
    for param in trainable:
        assert param.grad is not None
        assert torch.isfinite(param.grad).all()
        assert param.grad.abs().sum() > 0
    discriminators = getattr(model, "discriminator_parameters", list)()
    ids = {id(p) for p in trainable}
    assert not any(id(p) in ids for p in discriminators)
    assert all(p.grad is None for p in discriminators)  # the main loss leaves D alone


def test_mag_discriminator_loss() -> None:
    model = tiny("mag").train()
    image, label = composite(batch=2)
    logits = model(image)
    loss, terms = model.discriminator_loss(image, label, logits)
    assert torch.isfinite(loss) and set(terms) == {"d_a", "d_r"}
    loss.backward()
    assert all(p.grad is None for p in model.trainable_parameters())  # inputs were detached
    for param in model.discriminator_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all()
    aux, aux_terms = model.auxiliary_loss(image, label, logits.detach())
    assert torch.isfinite(aux) and all(np.isfinite(v) for v in aux_terms.values())


def test_bayar_constraint_holds_after_forward() -> None:
    torch.manual_seed(0)
    layer = BayarConv2d(3, 4)
    with torch.no_grad():
        layer.weight.normal_()  # any raw weights, even negative
    layer(torch.rand(1, 3, 16, 16)).sum().backward()
    kernel = layer.constrained_weight().detach()
    centre = kernel[..., 2, 2]
    assert torch.allclose(centre, torch.full_like(centre, -1.0))
    assert torch.allclose(kernel.sum(dim=(2, 3)) - centre, torch.ones_like(centre), atol=1e-5)
    assert layer.weight.grad is not None and torch.isfinite(layer.weight.grad).all()


def test_srm_filters_are_fixed_high_pass() -> None:
    srm = SRMConv2d(3)
    assert not list(srm.parameters())
    assert not srm.weight.requires_grad
    flat = srm(torch.full((1, 3, 12, 12), 0.7))
    assert flat.shape == (1, 9, 12, 12)
    assert flat[..., 2:-2, 2:-2].abs().max() < 1e-6  # kernels sum to zero
    model = tiny("mantranet")
    assert all(id(p) != id(srm.weight) for p in model.trainable_parameters())
    assert "srm.weight" in model.state_dict()


@pytest.mark.parametrize("window", [7, 15, 31])
def test_zscore_of_constant_map_is_zero(window: int) -> None:
    z = zscore_pool(torch.full((2, 3, 20, 24), 3.5), window)
    assert z.shape == (2, 3, 20, 24)
    assert z.abs().max() < 1e-3


def test_zscore_is_standardised_in_the_interior() -> None:
    torch.manual_seed(0)
    z = zscore_pool(torch.randn(1, 1, 64, 64) * 5 + 2, 15)
    assert abs(float(z.mean())) < 0.1
    assert 0.7 < float(z.std()) < 1.3


# (Adam steps, lr): each reaches Dice ≈ 1 after 20–30 steps with seeds 0 and 1
OVERFIT: dict[str, tuple[int, float]] = {"unet_rgb": (60, 3e-3), "mantranet": (60, 1e-2),
                                         "mag": (60, 5e-3), "catnet": (60, 3e-3)}


@pytest.mark.parametrize("name", NETWORKS)
def test_overfits_one_pair(name: str) -> None:
    torch.manual_seed(0)
    model = tiny(name).train()
    steps, lr = OVERFIT[name]
    optimizer = torch.optim.Adam(model.trainable_parameters(), lr=lr)
    d_optimizer = torch.optim.Adam(model.discriminator_parameters(), lr=lr) \
        if model.has_own_adversary else None
    image, label = composite()
    for _ in range(steps):
        logits = model(image)
        optimizer.zero_grad()
        total_loss(model, image, label, logits).backward()
        optimizer.step()
        if d_optimizer is not None:
            d_optimizer.zero_grad()
            model.discriminator_loss(image, label, logits)[0].backward()
            d_optimizer.step()
    model.eval()
    with torch.no_grad():
        assert dice(model(image), label) > 0.9


def test_registry_lists_and_builds() -> None:
    assert baseline_names() == sorted(set(MODELS) - {"fakesegment"})
    assert {"unet_rgb", "mantranet", "mag", "catnet", "featdiff_oracle"} <= set(baseline_names())
    for name in NETWORKS:
        spec = MODELS[name]
        assert spec.trainable and not spec.needs_pair and spec.description
        model = tiny(name)
        assert isinstance(model, Segmenter) and model.multiple >= 1
        assert model.has_own_adversary == model.has_auxiliary_loss == (name == "mag")
    oracle = MODELS["featdiff_oracle"]
    assert not oracle.trainable and oracle.needs_pair
    with pytest.raises(FakesegError, match="evaluator"):
        build_model({"model": "featdiff_oracle"})


@pytest.mark.parametrize(("typo", "check"), [
    ("mantra_net", lambda m: "did you mean 'mantranet'?" in m),
    ("unet-rgb", lambda m: "did you mean 'unet_rgb'?" in m),
    ("zzz", lambda m: "choose from" in m),
])
def test_registry_did_you_mean(typo: str, check: Callable[[str], bool]) -> None:
    with pytest.raises(FakesegError, match=f"unknown model '{typo}'") as info:
        build_model({"model": typo})
    assert check(str(info.value))


def test_block_dct_matches_scipy_on_each_block() -> None:
    from scipy.fft import dctn

    rng = np.random.default_rng(0)
    image = rng.random((1, 3, 16, 24)).astype(np.float32)
    coefficients = BlockDCT()(torch.from_numpy(image))[0].numpy()  # (64, 2, 3)
    y = (image[0] * np.array(LUMA_WEIGHTS, np.float32)[:, None, None]).sum(0) * 255 - 128
    for bi in range(2):
        for bj in range(3):
            block = dctn(y[8 * bi:8 * bi + 8, 8 * bj:8 * bj + 8], norm="ortho")
            np.testing.assert_allclose(coefficients[:, bi, bj], block.ravel(), atol=1e-3)


def test_dct_stream_sees_jpeg_quantisation() -> None:
    """Re-DCT of a decoded JPEG clusters at multiples of its quantisation steps; a PNG doesn't."""
    import io

    from PIL import Image
    from skimage import data

    pixels = data.astronaut()[:128, :128]
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=50)
    decoded = np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))

    def histogram(array: np.ndarray) -> torch.Tensor:
        tensor = torch.from_numpy(array.transpose(2, 0, 1).astype(np.float32) / 255)[None]
        return one_hot_magnitudes(BlockDCT()(tensor), clip=20).sum((0, 2, 3))

    jpeg, raw = histogram(decoded), histogram(pixels)
    assert jpeg.sum() == raw.sum() == 128 * 128
    # quality 50: AC steps ≥ 10, so magnitudes 3..8 (between 0 and one step) nearly vanish
    assert jpeg[3:9].sum() < 0.05 * raw[3:9].sum()
    assert jpeg[0] > 2 * raw[0]
