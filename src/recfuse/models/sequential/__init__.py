"""Sequential recommenders (SPEC L3): SASRec, BERT4Rec, CL4SRec on one shared encoder, sequence
builder and training loop. Importing this package registers them."""

from recfuse.models.sequential.base import SequentialRecommender
from recfuse.models.sequential.bert4rec import BERT4Rec
from recfuse.models.sequential.cl4srec import CL4SRec
from recfuse.models.sequential.encoder import SequenceEncoder
from recfuse.models.sequential.sasrec import SASRec
from recfuse.models.sequential.sequences import Sequences

__all__ = ["BERT4Rec", "CL4SRec", "SASRec", "SequenceEncoder", "Sequences", "SequentialRecommender"]
