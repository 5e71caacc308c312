"""Reading ``.npz`` files whose sizes cannot be trusted (predictors, users' data sets).

``np.load`` allocates the shape an array's header declares before reading its data, so a file of a
few kilobytes could ask for terabytes. :func:`check_npz_sizes` reads only the headers and refuses a
member that declares more than it can hold, before anything is allocated.
"""

from __future__ import annotations

import math
import os
import zipfile

import numpy as np

__all__ = ["check_npz_sizes", "DEFLATE_MAX_RATIO"]

DEFLATE_MAX_RATIO = 1032
"""The most deflate can compress (258-byte matches in 2 bits): a deflated member that declares more
than this times its stored size is not a valid one."""


def check_npz_sizes(path: str | os.PathLike[str], *, allow_compressed: bool) -> None:
    """Raise ``ValueError`` naming the member whose declared array exceeds what the file holds.

    Uncompressed members (what ``np.savez`` writes) must hold every declared byte; deflated ones
    (``np.savez_compressed``), where ``allow_compressed``, at most :data:`DEFLATE_MAX_RATIO` times
    their stored size. Object arrays (pickles) and other compression methods are refused.
    """
    with zipfile.ZipFile(path) as archive:
        for member in archive.infolist():
            if member.compress_type == zipfile.ZIP_STORED:
                limit = member.compress_size
            elif member.compress_type == zipfile.ZIP_DEFLATED and allow_compressed:
                limit = member.compress_size * DEFLATE_MAX_RATIO
            else:
                raise ValueError(f"member {member.filename!r} uses compression method {member.compress_type}, "
                                 "which is not read here")
            with archive.open(member) as stream:
                version = np.lib.format.read_magic(stream)
                if version == (1, 0):
                    shape, _, dtype = np.lib.format.read_array_header_1_0(stream)
                else:
                    shape, _, dtype = np.lib.format.read_array_header_2_0(stream)
            declared = math.prod(shape) * dtype.itemsize
            if dtype.hasobject:
                raise ValueError(f"member {member.filename!r} holds Python objects (a pickle), which are not read")
            if declared > limit:
                raise ValueError(f"member {member.filename!r} declares shape {shape} of {dtype} ({declared:,} bytes) "
                                 f"but the file holds {member.compress_size:,} bytes of it")
