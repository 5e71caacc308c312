"""Small shared helpers."""

from __future__ import annotations

CHANNEL_DIVISOR = 8


def make_divisible(value: float, divisor: int = CHANNEL_DIVISOR) -> int:
    """Round ``value`` to the nearest multiple of ``divisor``, never going down by more than 10%.

    The rule of the MobileNet papers (and of OFA's widths), so our layer widths equal the reference's.
    """
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


def centre_crop_range(kernel_size: int, sub_kernel_size: int) -> tuple[int, int]:
    """Start and end index of the centred ``sub_kernel_size`` window inside a ``kernel_size`` kernel."""
    start = kernel_size // 2 - sub_kernel_size // 2
    return start, start + sub_kernel_size
