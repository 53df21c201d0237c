"""Building blocks: convolution variants, pooling, structured dropout, channel attention."""

from cnnlab.nn.arithmetic import PaddingPolicy
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
from cnnlab.nn.factory import create_act, create_norm
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

__all__ = [
    "ConvNormAct",
    "DepthwiseSeparableConv",
    "DropBlock2d",
    "DropPath",
    "GlobalPool",
    "LpPool2d",
    "PaddedConv1d",
    "PaddedConv2d",
    "PaddedConv3d",
    "PaddingPolicy",
    "PoolMode",
    "SpatialDropout",
    "SpatialPyramidPool",
    "SpatiallySeparableConv",
    "SqueezeExcitation",
    "StochasticPool2d",
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
    "pool",
]
