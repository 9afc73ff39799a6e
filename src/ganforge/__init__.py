"""ganforge: adversarial and variational image generation on convolutional networks.

    >>> import ganforge
    >>> run = ganforge.train()                     # DCGAN on the bundled digits
    >>> model = ganforge.load(run.dir)
    >>> images = model.sample(64, seed=0)          # uint8, N x H x W x C
"""
from .training.device import require_torch

require_torch()  # one clear line on a PyTorch older than ganforge needs

from .api import check_config, make_config, train  # noqa: E402
from .config import Config  # noqa: E402
from .errors import CheckpointError, ConfigError, DataError, GanforgeError  # noqa: E402
from .export import export_onnx  # noqa: E402
from .inference import TrainedGenerator, load  # noqa: E402

__version__ = "0.1.0"
__all__ = ["CheckpointError", "Config", "ConfigError", "DataError", "GanforgeError",
           "TrainedGenerator", "check_config", "export_onnx", "load", "make_config", "train"]
