"""Network families (one file per family); ``build_unet`` is the one the commands use."""
from isonet2core.nets.unet import ARCH_CHANNELS, build_unet, count_parameters

__all__ = ["ARCH_CHANNELS", "build_unet", "count_parameters"]
