"""The OFA search spaces as NNI ``ModelSpace`` s (built from the core's elastic ops)."""

import ofa_nni  # noqa: F401  (applies the NNI 3.0 compat patches before NNI is used)
from search_spaces.ofa_mobilenetv3 import ElasticStage, InputResolution, OFAMobileNetV3Space

__all__ = ["OFAMobileNetV3Space", "ElasticStage", "InputResolution"]
