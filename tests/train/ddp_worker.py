"""One rank of the data-parallel test: train a few steps, save this rank's weights.

Run as `python -m torch.distributed.run --nproc-per-node 2 tests/train/ddp_worker.py OUT`.
"""

import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

from cnnlab.data.sources import ImageSet
from cnnlab.models.small import small_cnn
from cnnlab.runs.recipe import load_recipe
from cnnlab.train.distributed import init_distributed, shutdown
from cnnlab.train.engine import Trainer
from cnnlab.train.evaluation import evaluate

out = Path(sys.argv[1])
dist, device = init_distributed("cpu")
torch.manual_seed(0)
images = torch.randint(0, 256, (64, 1, 8, 8), dtype=torch.uint8)  # the same data everywhere
labels = torch.arange(64) % 10
data = ImageSet(images, labels, tuple("0123456789"))
recipe = load_recipe("default", ["epochs=1", "batch_size=16", "augment.flip=true", "augment.crop_padding=1"])
torch.manual_seed(dist.rank)  # different initial weights: DDP broadcasts rank 0's at the start
model = small_cnn(width=8)
initial = {k: v.clone() for k, v in model.state_dict().items()}
trainer = Trainer(model, recipe, data, data, device=device, dist=dist)
with trainer.session():
    figures = trainer.train_epoch()  # 4 global steps of 16 images, 8 per rank
loss, accuracy = figures["loss"], figures["acc"]
val_loss = evaluate(model, data, trainer.norm, trainer.task).result()["loss"]  # the same weights and statistics everywhere
save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(out / f"rank{dist.rank}.safetensors"))
save_file({k: v.contiguous() for k, v in initial.items()}, str(out / f"initial{dist.rank}.safetensors"))
(out / f"metrics{dist.rank}.txt").write_text(f"{loss} {accuracy} {trainer.state.step} {val_loss!r}")
shutdown(dist)
