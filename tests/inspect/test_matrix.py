"""A convolution as a sparse matrix: W x == conv(x), and W^T y == conv_transpose(y)."""

import pytest
import torch
from torch import nn

from cnnlab.errors import CnnlabError
from cnnlab.inspect.matrix import conv_as_matrix, matching_conv_transpose, transposed_output_padding
from cnnlab.nn import conv

torch.manual_seed(0)


@pytest.mark.parametrize("mode", ["zeros", "circular", "reflect", "replicate"])
@pytest.mark.parametrize("stride, padding, dilation", [(1, 1, 1), (2, 1, 1), (2, 2, 2), (3, 0, 1), (1, 2, 2)])
def test_matrix_times_input_is_the_convolution(mode: str, stride: int, padding: int, dilation: int) -> None:
    layer = nn.Conv2d(4, 6, 3, stride=stride, padding=padding, dilation=dilation, groups=2, padding_mode=mode, bias=False)
    x = torch.randn(1, 4, 9, 8)
    W = conv_as_matrix(layer, (4, 9, 8))
    torch.testing.assert_close(W @ x.flatten(), layer(x).flatten())


@pytest.mark.parametrize("dims", [1, 3])
def test_matrix_in_one_and_three_dimensions(dims: int) -> None:
    layer = conv(2, 3, 3, stride=2, padding="same", dims=dims, bias=False)
    shape = (2, *[7] * dims)
    x = torch.randn(1, *shape)
    torch.testing.assert_close(conv_as_matrix(layer, shape) @ x.flatten(), layer(x).flatten())


def test_bias_is_left_aside() -> None:
    layer = nn.Conv2d(1, 2, 3)
    x = torch.randn(1, 1, 5, 5)
    W = conv_as_matrix(layer, (1, 5, 5))
    expected = (layer(x) - layer.bias.view(1, -1, 1, 1)).flatten()
    torch.testing.assert_close(W @ x.flatten(), expected)


def test_zero_padding_gives_doubly_block_toeplitz() -> None:
    layer = nn.Conv2d(1, 1, 3, padding=1, bias=False)
    H = W_ = 5
    W = conv_as_matrix(layer, (1, H, W_)).to_dense()
    blocks = W.reshape(H, W_, H, W_).permute(0, 2, 1, 3)  # (row block, col block, W, W)
    for i in range(H):
        for j in range(H):
            block = blocks[i, j]
            # Outer structure: a block depends only on j - i (block Toeplitz) ...
            if i > 0 and j > 0:
                torch.testing.assert_close(block, blocks[i - 1, j - 1])
            # ... and each block is itself Toeplitz: constant along its diagonals.
            torch.testing.assert_close(block[1:, 1:], block[:-1, :-1])


def test_circular_padding_gives_circulant_blocks() -> None:
    layer = nn.Conv2d(1, 1, 3, padding=1, padding_mode="circular", bias=False)
    n = 5
    W = conv_as_matrix(layer, (1, n, n)).to_dense().reshape(n, n, n, n).permute(0, 2, 1, 3)
    for i in range(n):
        for j in range(n):
            block = W[i, j]
            torch.testing.assert_close(torch.roll(block, (1, 1), (0, 1)), block)  # circulant
            torch.testing.assert_close(W[(i + 1) % n, (j + 1) % n], block)  # block circulant


@pytest.mark.parametrize(
    "size, kernel, stride, padding, dilation",
    [(9, 3, 1, 1, 1), (9, 3, 2, 1, 1), (10, 3, 2, 1, 1), (11, 4, 3, 2, 1), (12, 3, 2, 2, 2), (7, 5, 2, 0, 1)],
)
def test_transpose_of_the_matrix_is_the_transposed_conv(size: int, kernel: int, stride: int, padding: int, dilation: int) -> None:
    layer = nn.Conv2d(3, 4, kernel, stride=stride, padding=padding, dilation=dilation, groups=1, bias=False)
    shape = (3, size, size + 1)
    W = conv_as_matrix(layer, shape)
    transposed = matching_conv_transpose(layer, shape)
    y = layer(torch.randn(1, *shape))
    out = transposed(y)
    assert out.shape[1:] == shape  # output_padding restores the exact input size
    torch.testing.assert_close(W.t() @ y.flatten(), out.flatten())
    assert transposed.output_padding[0] == (size + 2 * padding - dilation * (kernel - 1) - 1) % stride


def test_transposed_output_padding_by_hand() -> None:
    # 10 + 2 - 2 - 1 = 9, 9 mod 2 = 1: a stride-2 conv maps 9 and 10 to 5; op=1 picks 10.
    assert transposed_output_padding(10, 3, 2, 1, 1) == 1
    assert transposed_output_padding(9, 3, 2, 1, 1) == 0


def test_refuses_non_convolutions() -> None:
    with pytest.raises(CnnlabError, match="Conv1d/2d/3d"):
        conv_as_matrix(nn.Linear(3, 3), (3,))
    with pytest.raises(CnnlabError, match="channels"):
        conv_as_matrix(nn.Conv2d(3, 3, 3), (2, 5, 5))


def test_refuses_pads_pytorch_refuses() -> None:
    with pytest.raises(CnnlabError, match="reflect padding 1 needs an input larger"):
        conv_as_matrix(nn.Conv1d(1, 1, 3, padding=1, padding_mode="reflect"), (1, 1))
    with pytest.raises(CnnlabError, match="circular padding 3 cannot exceed"):
        conv_as_matrix(nn.Conv1d(1, 1, 7, padding=3, padding_mode="circular"), (1, 2))


def test_transposed_match_refuses_asymmetric_padding() -> None:
    layer = nn.Conv2d(1, 1, 4, padding="same")  # PyTorch pads 1 before, 2 after
    with pytest.raises(CnnlabError, match="symmetric padding"):
        matching_conv_transpose(layer, (1, 6, 6))


@pytest.mark.gpu
def test_matrix_of_a_cuda_layer() -> None:
    layer = nn.Conv2d(2, 3, 3, padding=1, bias=False).cuda()
    x = torch.randn(1, 2, 6, 6, device="cuda")
    torch.testing.assert_close(conv_as_matrix(layer, (2, 6, 6)) @ x.flatten(), layer(x).flatten())
