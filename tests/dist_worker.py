"""Run by tests/test_distributed.py under torchrun: train, then save this rank's weights."""
import sys

from safetensors.torch import save_file

import ganforge
from ganforge import distributed
from ganforge.training import Trainer

out, overrides = sys.argv[1], sys.argv[2:]
trainer = Trainer(ganforge.make_config(overrides=[*overrides, f"out={out}/run"]))
trainer.run()
weights = {f"{name}.{key}": value.detach().clone().contiguous()
           for name, net in trainer.nets.items() for key, value in net.state_dict().items()}
save_file(weights, f"{out}/rank{distributed.rank()}.safetensors")
distributed.teardown()
