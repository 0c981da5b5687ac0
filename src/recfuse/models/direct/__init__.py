"""Direct (collaborative top-k) backbones: MF (BPR), BiasMF, NeuMF, LightGCN, MixGCF, SGL, SimGCL.

Importing this package registers every model under its name (``create_model("lightgcn")``).
"""

from recfuse.models.direct.biasmf import BiasMF
from recfuse.models.direct.lightgcn import GraphBackbone, LightGCN
from recfuse.models.direct.mf import MF
from recfuse.models.direct.mixgcf import MixGCF
from recfuse.models.direct.neumf import NeuMF
from recfuse.models.direct.sgl import SGL
from recfuse.models.direct.simgcl import SimGCL

__all__ = ["MF", "BiasMF", "NeuMF", "LightGCN", "GraphBackbone", "MixGCF", "SGL", "SimGCL"]
