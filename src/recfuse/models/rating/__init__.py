"""Feature-based rating-prediction backbones (Llama4Rec's rating task) over one shared feature layer.

Importing the package registers ``deepfm``, ``nfm``, ``dcn``, ``afm``, ``xdeepfm`` and ``autoint``.
"""

from recfuse.models.rating.afm import AFM
from recfuse.models.rating.autoint import AutoInt
from recfuse.models.rating.base import RatingRecommender
from recfuse.models.rating.dcn import DCN
from recfuse.models.rating.deepfm import DeepFM
from recfuse.models.rating.features import FeatureConfig, FeatureSchema, FieldEmbedding, FieldSpec
from recfuse.models.rating.nfm import NFM
from recfuse.models.rating.xdeepfm import XDeepFM

__all__ = [
           "AFM",
           "DCN",
           "NFM",
           "AutoInt",
           "DeepFM",
           "FeatureConfig",
           "FeatureSchema",
           "FieldEmbedding",
           "FieldSpec",
           "RatingRecommender",
           "XDeepFM",
]
