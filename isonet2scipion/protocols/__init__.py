from .protocol_deconv import ProtIsoNet2Deconv
from .protocol_denoise import ProtIsoNet2Denoise
from .protocol_import_model import ProtIsoNet2ImportModel
from .protocol_make_mask import ProtIsoNet2MakeMask
from .protocol_predict import ProtIsoNet2Predict
from .protocol_refine import ProtIsoNet2Refine

__all__ = ["ProtIsoNet2Deconv", "ProtIsoNet2Denoise", "ProtIsoNet2ImportModel", "ProtIsoNet2MakeMask",
           "ProtIsoNet2Predict", "ProtIsoNet2Refine"]
