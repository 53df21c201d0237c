"""A fine-tuning source file is read without unpickling; a file that is not what its name says is one line."""

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from cnnlab.errors import CnnlabError
from cnnlab.models.registry import create_model
from cnnlab.runs.paradigm import FinetuneConfig
from cnnlab.train.paradigms.finetune import read_weights, transfer


class Trap:
    """Unpickling this touches a file: the proof that nothing was unpickled is the file's absence."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return Path.touch, (self.marker,)


def _model() -> torch.nn.Module:
    return create_model("small_cnn", num_classes=10, in_chans=1)


def test_a_torch_pickle_named_safetensors_is_one_line_and_never_unpickled(tmp_path) -> None:
    marker = tmp_path / "unpickled"
    weights = tmp_path / "weights.safetensors"
    torch.save({**_model().state_dict(), "trap": Trap(marker)}, weights)
    for read in (lambda: read_weights(weights),
                 lambda: transfer(_model(), "small_cnn", FinetuneConfig(source=str(weights)))):
        with pytest.raises(CnnlabError) as error:
            read()
        message = str(error.value)
        assert "\n" not in message and message.startswith(f"{weights} is not a safetensors file")
        assert message.endswith("convert it with safetensors.torch.save_file, or give a .pth state dict")
    assert not marker.exists()


@pytest.mark.parametrize("content", [b"", b"\x08\x00\x00\x00\x00\x00\x00\x00{\"a\":", b"not a tensor file at all"])
def test_a_truncated_or_foreign_safetensors_file_is_one_line(tmp_path, content: bytes) -> None:
    weights = tmp_path / "w.safetensors"
    weights.write_bytes(content)
    with pytest.raises(CnnlabError, match=r"is not a safetensors file .*save_file, or give a \.pth state dict") as error:
        read_weights(weights)
    assert "\n" not in str(error.value)


def test_a_pth_with_code_in_its_pickle_is_refused_unexecuted(tmp_path) -> None:
    marker = tmp_path / "unpickled"
    weights = tmp_path / "weights.pth"
    torch.save({"trap": Trap(marker)}, weights)
    with pytest.raises(CnnlabError, match="is not a weights file torch can read safely") as error:
        read_weights(weights)  # torch.load(weights_only=True) refuses the call in the pickle
    assert "\n" not in str(error.value) and not marker.exists()


def test_real_safetensors_and_pth_state_dicts_still_transfer(tmp_path) -> None:
    source = _model()
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(tmp_path / "w.safetensors"))
    torch.save(source.state_dict(), tmp_path / "w.pth")
    for name in ("w.safetensors", "w.pth"):
        assert read_weights(tmp_path / name).keys() == source.state_dict().keys()
        copied, _ = transfer(_model(), "small_cnn", FinetuneConfig(source=str(tmp_path / name), source_normalisation=False))
        assert copied > 0
