"""Feature-based rating-prediction backbones (Llama4Rec's rating task) over one shared feature layer."""

from recfuse.models.rating.base import RatingRecommender
from recfuse.models.rating.deepfm import DeepFM
from recfuse.models.rating.features import FeatureConfig, FeatureSchema, FieldEmbedding, FieldSpec

__all__ = ["RatingRecommender", "DeepFM", "FeatureConfig", "FeatureSchema", "FieldEmbedding", "FieldSpec"]
