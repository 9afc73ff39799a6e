"""ganforge: adversarial and variational image generation on convolutional networks.

    >>> import ganforge
    >>> run = ganforge.train()                     # DCGAN on the bundled digits
    >>> model = ganforge.load(run.dir)
    >>> images = model.sample(64, seed=0)          # uint8, N x H x W x C
"""
from .api import check_config, make_config, train
from .config import Config
from .errors import CheckpointError, ConfigError, DataError, GanforgeError
from .inference import TrainedGenerator, load

__version__ = "0.1.0"
__all__ = ["CheckpointError", "Config", "ConfigError", "DataError", "GanforgeError",
           "TrainedGenerator", "check_config", "load", "make_config", "train"]
