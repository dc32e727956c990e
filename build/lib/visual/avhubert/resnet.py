"""AV-HuBERT's visual front-end: a 3-D conv stem over time and a 2-D ResNet-18 trunk per frame.

Shapes (W = resnet_width, 64 in the released models; H x W = 88 x 88 mouth crops):
    video    (B, 1, T, 88, 88)
    stem     (B, W, T, 22, 22)    Conv3d 5x7x7 stride (1,2,2) -> BN -> PReLU -> MaxPool 1x3x3 stride (1,2,2)
    frames   (B*T, W, 22, 22)     the trunk sees every frame as an image: one batched call, no loop
    trunk    (B*T, 8W, 3, 3)      4 stages x 2 basic blocks, stride 2 from the second stage on
    pooled   (B, 8W, T)           global average pool per frame

Module names follow the released ``ResEncoder`` (``frontend3D.{0,1,2}``, ``trunk.layerN.M.*`` with
``relu1``/``relu2`` PReLUs and ``downsample.{0,1}``), so its state dict loads without a key map.
"""

import torch
from torch import nn


class BasicBlock(nn.Module):
    """Two 3x3 convs with a residual; PReLU (per channel) after the first conv and after the sum."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu1 = nn.PReLU(planes)
        self.relu2 = nn.PReLU(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or inplanes != planes:  # 1x1 strided projection of the shortcut
            self.downsample = nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride=stride, bias=False),
                                            nn.BatchNorm2d(planes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, Cin, H, W) -> (N, C, H/s, W/s)
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu2(out + shortcut)


class ResNetTrunk(nn.Module):
    """ResNet-18 without stem and classifier: 4 stages of 2 blocks, widths W, 2W, 4W, 8W."""

    def __init__(self, width: int = 64):
        super().__init__()
        widths = [width, 2 * width, 4 * width, 8 * width]
        inplanes = width
        for i, planes in enumerate(widths):
            stride = 1 if i == 0 else 2
            self.add_module(f"layer{i + 1}", nn.Sequential(BasicBlock(inplanes, planes, stride),
                                                           BasicBlock(planes, planes)))
            inplanes = planes

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, W, h, w) -> (N, 8W)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return x.mean(dim=(2, 3))  # AdaptiveAvgPool2d(1)


class ResEncoder(nn.Module):
    def __init__(self, width: int = 64):
        super().__init__()
        self.frontend3D = nn.Sequential(  # noqa: N815 -- the released name
            nn.Conv3d(1, width, kernel_size=(5, 7, 7), stride=(1, 2, 2), padding=(2, 3, 3), bias=False),
            nn.BatchNorm3d(width),
            nn.PReLU(width),
            nn.MaxPool3d(kernel_size=(1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1)),
        )
        self.trunk = ResNetTrunk(width)
        self.out_dim = 8 * width

    def forward(self, video: torch.Tensor) -> torch.Tensor:  # (B, 1, T, H, W) -> (B, 8W, T)
        b = video.shape[0]
        x = self.frontend3D(video)  # (B, W, T, h, w)
        t = x.shape[2]
        x = x.transpose(1, 2).flatten(0, 1)  # (B*T, W, h, w)
        x = self.trunk(x)  # (B*T, 8W)
        return x.view(b, t, -1).transpose(1, 2)  # (B, 8W, T)
