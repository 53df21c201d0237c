"""U-Net: the DESIGN table's count, the paper's 572 -> 388 shapes on meta, "same" padding, a CPU step."""

import torch
from torch import nn

from cnnlab.models.registry import model_info
from cnnlab.models.unet import UNet, center_crop, unet
from tests.models.helpers import stage_outputs


def _count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _double_conv(c_in: int, c_out: int) -> int:
    """Two 3x3 convs with biases."""
    return (9 * c_in * c_out + c_out) + (9 * c_out * c_out + c_out)


def _hand_count(in_chans: int = 1, classes: int = 2) -> int:
    widths = (64, 128, 256, 512, 1024)
    encoder = _double_conv(in_chans, 64) + sum(_double_conv(a, b) for a, b in zip(widths[:-1], widths[1:], strict=True))
    # Up-sampling: 2x2 transposed conv C -> C/2 with bias, then DoubleConv(C/2 + C/2 skip -> C/2).
    decoder = sum(4 * c * (c // 2) + c // 2 + _double_conv(c, c // 2) for c in widths[:0:-1])
    return encoder + decoder + 64 * classes + classes


def test_count_matches_design_table_and_hand_count() -> None:
    with torch.device("meta"):
        model = unet()
    assert _count(model) == _hand_count() == 31_030_658
    with torch.device("meta"):
        assert _count(unet(num_classes=5, in_chans=3)) == _hand_count(3, 5)
        assert _count(unet(padding="same")) == 31_030_658  # padding changes no weight


def test_paper_tile_572_maps_to_388_on_meta() -> None:
    with torch.device("meta"):
        model = unet()
    out, maps = stage_outputs(model, torch.zeros(1, 1, 572, 572, device="meta"))
    shapes = {name: tuple(m.shape[1:]) for name, m in maps.items()}
    assert out.shape == (1, 2, 388, 388)
    # The paper's Fig. 1, level by level.
    assert [shapes[f"encoder.{i}"] for i in range(4)] == [(64, 568, 568), (128, 280, 280), (256, 136, 136), (512, 64, 64)]
    assert shapes["bottleneck"] == (1024, 28, 28)
    assert [shapes[f"decoder.{i}"] for i in range(4)] == [(512, 52, 52), (256, 100, 100), (128, 196, 196), (64, 388, 388)]


def test_same_padding_keeps_the_size() -> None:
    torch.manual_seed(0)
    model = unet(padding="same").eval()
    with torch.no_grad():
        assert model(torch.randn(1, 1, 64, 64)).shape == (1, 2, 64, 64)


def test_forward_backward_at_the_smallest_valid_tile() -> None:
    # Bottleneck side b >= 4 keeps every decoder map positive (2b - 4, then 2 x - 4, ...):
    # input = 16 b + 124 = 188 -> encoder 184, 88, 40, 16 -> bottleneck 4 -> decoder 4, 4, 4, 4.
    torch.manual_seed(0)
    model = unet()
    out = model(torch.randn(1, 1, 188, 188))
    assert out.shape == (1, 2, 4, 4)
    out.square().mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    info = model_info("unet")
    assert info.min_train_size == 188 and not info.classifier
    assert info.input_size == (1, 572, 572) and info.default_classes == 2


def test_center_crop_takes_the_middle() -> None:
    x = torch.arange(36.0).reshape(1, 1, 6, 6)
    torch.testing.assert_close(center_crop(x, 2, 2), torch.tensor([[[[14.0, 15.0], [20.0, 21.0]]]]))
    assert torch.equal(center_crop(x, 6, 6), x)


def test_feature_layers_resolve() -> None:
    with torch.device("meta"):
        model = unet()
    assert isinstance(model, UNet) and len(model.feature_layers()) == 9
    for name in model.feature_layers():
        model.get_submodule(name)
