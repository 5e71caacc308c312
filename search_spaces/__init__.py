"""The OFA search spaces as NNI ``ModelSpace`` s (built from the core's elastic ops)."""

from ofa_nni import _nni_compat

_nni_compat.apply()  # the NNI 3.0 workarounds, before NNI's NAS modules load

from search_spaces.elastic_mobile import ElasticStage, InputResolution, OFAMobileSpace, OFASupernet  # noqa: E402
from search_spaces.ofa_mobilenetv3 import OFAMobileNetV3Space  # noqa: E402
from search_spaces.ofa_proxyless import OFAProxylessNASSpace  # noqa: E402
from search_spaces.ofa_resnet import OFAResNetSpace  # noqa: E402
from search_spaces.registry import DEFAULT_SPACE, register_space, space_class, space_names  # noqa: E402
from search_spaces.supernet_file import SUPERNET_FORMAT, load_supernet, save_supernet  # noqa: E402

__all__ = [
    "OFAMobileNetV3Space",
    "OFAProxylessNASSpace",
    "OFAResNetSpace",
    "OFAMobileSpace",
    "OFASupernet",
    "ElasticStage",
    "InputResolution",
    "DEFAULT_SPACE",
    "register_space",
    "space_class",
    "space_names",
    "SUPERNET_FORMAT",
    "load_supernet",
    "save_supernet",
]
