"""Building blocks: convolution variants, pooling, structured dropout, channel attention, and the
residual / inception / dense / inverted-residual / ConvNeXt / Xception / highway blocks of the zoo."""

from cnnlab.arithmetic import PaddingPolicy
from cnnlab.nn.attention import SqueezeExcitation
from cnnlab.nn.conv import (
    ConvNormAct,
    DepthwiseSeparableConv,
    PaddedConv1d,
    PaddedConv2d,
    PaddedConv3d,
    SpatiallySeparableConv,
    conv,
    conv1x1,
    conv_transpose,
    depthwise_conv,
    grouped_conv,
)
from cnnlab.nn.convnext import ConvNeXtBlock, LayerNorm2d
from cnnlab.nn.dense import DenseBlock, DenseLayer, Transition
from cnnlab.nn.factory import build_act, create_act, create_norm
from cnnlab.nn.highway import HighwayLayer
from cnnlab.nn.inception import BasicConv2d, Concat, InceptionSpec, inception_v1_module
from cnnlab.nn.mobile import InvertedResidual, make_divisible
from cnnlab.nn.pooling import (
    GlobalPool,
    LpPool2d,
    PoolMode,
    SpatialPyramidPool,
    StochasticPool2d,
    fractional_max_pool,
    global_avg_pool,
    global_max_pool,
    pool,
)
from cnnlab.nn.regularization import DropBlock2d, DropPath, SpatialDropout, drop_path
from cnnlab.nn.residual import (
    BasicBlock,
    Bottleneck,
    CifarBasicBlock,
    PreActBlock,
    Shortcut,
    ZeroPadShortcut,
)
from cnnlab.nn.xception import SeparableConvNorm, XceptionBlock

__all__ = [
    "BasicBlock",
    "BasicConv2d",
    "Bottleneck",
    "CifarBasicBlock",
    "Concat",
    "ConvNeXtBlock",
    "ConvNormAct",
    "DenseBlock",
    "DenseLayer",
    "DepthwiseSeparableConv",
    "DropBlock2d",
    "DropPath",
    "GlobalPool",
    "HighwayLayer",
    "InceptionSpec",
    "InvertedResidual",
    "LayerNorm2d",
    "LpPool2d",
    "PaddedConv1d",
    "PaddedConv2d",
    "PaddedConv3d",
    "PaddingPolicy",
    "PoolMode",
    "PreActBlock",
    "SeparableConvNorm",
    "Shortcut",
    "SpatialDropout",
    "SpatialPyramidPool",
    "SpatiallySeparableConv",
    "SqueezeExcitation",
    "StochasticPool2d",
    "Transition",
    "XceptionBlock",
    "ZeroPadShortcut",
    "build_act",
    "conv",
    "conv1x1",
    "conv_transpose",
    "create_act",
    "create_norm",
    "depthwise_conv",
    "drop_path",
    "fractional_max_pool",
    "global_avg_pool",
    "global_max_pool",
    "grouped_conv",
    "inception_v1_module",
    "make_divisible",
    "pool",
]
