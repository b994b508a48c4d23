"""The plain-torch ResNet has the torchvision/timm layout, so published state dicts load strictly."""

from __future__ import annotations

import pytest
import torch

from embedder.pretrained.resnet import ResNetFeatures


def test_resnet50_layout_is_torchvision_v1_5() -> None:
    net = ResNetFeatures("resnet50", 13)
    sd = net.state_dict()
    # torchvision resnet50 has 320 entries; without fc.weight/fc.bias 318 (timm num_classes=0 too)
    assert len(sd) == 318
    assert sd["conv1.weight"].shape == (64, 13, 7, 7)
    assert sd["layer1.0.downsample.0.weight"].shape == (256, 64, 1, 1)
    assert sd["layer4.2.bn3.running_var"].shape == (2048,)
    assert "layer3.5.conv3.weight" in sd and "layer3.6.conv1.weight" not in sd  # (3, 4, 6, 3) blocks
    assert not any(k.startswith("fc.") for k in sd)
    # v1.5: the stride of a bottleneck sits on its 3x3 convolution
    assert net.layer2[0].conv2.stride == (2, 2) and net.layer2[0].conv1.stride == (1, 1)
    assert net.num_features == 2048


def test_resnet18_layout() -> None:
    net = ResNetFeatures("resnet18", 13)
    sd = net.state_dict()
    assert len(sd) == 120  # torchvision resnet18: 122 with fc
    assert sd["layer2.0.downsample.0.weight"].shape == (128, 64, 1, 1)
    assert "layer1.0.downsample.0.weight" not in sd
    assert net.num_features == 512
    with torch.inference_mode():
        assert net.eval()(torch.zeros(2, 13, 64, 64)).shape == (2, 512)


@pytest.mark.parametrize("arch", ["resnet18", "resnet50"])
def test_same_keys_and_outputs_as_timm(arch: str, chips) -> None:  # noqa: ANN001
    timm = pytest.importorskip("timm", reason="timm (the models extra) is not importable here")
    ref = timm.create_model(arch, pretrained=False, in_chans=13, num_classes=0).eval()
    ours = ResNetFeatures(arch, 13).eval()
    assert set(ref.state_dict()) == set(ours.state_dict())
    ours.load_state_dict(ref.state_dict(), strict=True)
    x = torch.from_numpy(chips.modalities["optical"].data[:2].copy())
    with torch.inference_mode():
        torch.testing.assert_close(ours(x), ref(x), rtol=1e-5, atol=1e-5)
