"""Scipion viewers of the IsoNet2 protocols and objects (registered by their ``_targets``)."""
from .viewer_tomograms import IsoNet2PredictViewer
from .viewer_training import IsoNet2ModelViewer, IsoNet2TrainingViewer

__all__ = ["IsoNet2PredictViewer", "IsoNet2ModelViewer", "IsoNet2TrainingViewer"]
