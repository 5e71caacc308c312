"""mit-han-lab's released Once-for-All artefacts, read as ofa-nni objects (Cai et al., ICLR 2020).

OFA's users start from files mit-han-lab published next to the ``ofa`` package; this package reads
them without importing ``ofa`` (the files are not shipped: users pass their paths):

* :mod:`~ofa_nni.ofa_released.predictors`: the tutorial's OFA-MobileNetV3 accuracy predictor
  (``acc_predictor.pth``) becomes an :class:`~ofa_nni.accuracy.MLPAccuracyPredictor` of the
  tutorial's space, and the OFA-ResNet50 predictor (``ofa_resnet50_acc_predictor.pth``) one of an
  OFA-ResNet50 space (:func:`~ofa_nni.ofa_released.predictors.resnet50_space`) that scores
  :class:`search_spaces.OFAResNetSpace` subnets.
* :mod:`~ofa_nni.ofa_released.latency_tables`: the per-resolution Samsung Note10 lookup tables become
  a latency cost of an OFA-MobileNetV3 space, and ProxylessNAS's ``mobile_trim.yaml`` (Google
  Pixel 1) one of an OFA-ProxylessNAS space of the widths and choices it covers
  (:func:`~ofa_nni.ofa_released.latency_tables.proxyless_mobile_space`); tables covering only some of
  a space's resolutions restrict the space to them.
* :mod:`~ofa_nni.ofa_released.net_config`: OFA's specialized-network format (``net.config`` as
  ``get_active_net_config()`` writes it, plus ``run.config`` with the image size), read into a
  sample and written for our subnets.

Every reader refuses a file of another space or layout with an :class:`~ofa_nni.errors.InvalidInputError`
naming the file, the layout it expected and the layout it found.
"""

from __future__ import annotations

from ofa_nni.ofa_released.latency_tables import (
    OFALatencyTable,
    ProxylessNASLatencyLUT,
    load_latency_table_file,
    load_ofa_latency_table,
    proxyless_mobile_space,
)
from ofa_nni.ofa_released.net_config import (
    ofa_net_config,
    read_ofa_net_config,
    sample_from_ofa_net_config,
    write_ofa_net_config,
)
from ofa_nni.ofa_released.predictors import (
    RESNET50_RESOLUTIONS,
    TUTORIAL_RESOLUTIONS,
    ResolutionSubsetPredictor,
    load_ofa_accuracy_predictor,
    load_predictor_file,
    resnet50_space,
    restrict_predictor,
    tutorial_space,
)

__all__ = [
    "OFALatencyTable",
    "ProxylessNASLatencyLUT",
    "RESNET50_RESOLUTIONS",
    "ResolutionSubsetPredictor",
    "TUTORIAL_RESOLUTIONS",
    "load_latency_table_file",
    "load_ofa_accuracy_predictor",
    "load_ofa_latency_table",
    "load_predictor_file",
    "ofa_net_config",
    "proxyless_mobile_space",
    "read_ofa_net_config",
    "resnet50_space",
    "restrict_predictor",
    "sample_from_ofa_net_config",
    "tutorial_space",
    "write_ofa_net_config",
]
