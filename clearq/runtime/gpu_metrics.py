"""GPU figures through NVIDIA's management library (pynvml), when there is one.

No NVIDIA driver, no library, or no device: ``GpuReader.open()`` returns None and the
agent reports no GPU fields, without an error. A figure a device does not support
(power on some boards) is left out, not guessed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from clearq.models import GpuMetrics

T = TypeVar("T")


class GpuReader:
    """Reads utilisation, memory, temperature and power of some GPUs."""

    def __init__(self, nvml: Any, indexes: Sequence[int]) -> None:
        self._nvml = nvml
        self._handles = [(i, nvml.nvmlDeviceGetHandleByIndex(i)) for i in indexes]

    @classmethod
    def open(cls, indexes: Sequence[int] | None = None) -> GpuReader | None:
        """A reader of ``indexes`` (all devices when None); None where NVML is unavailable."""
        try:
            import pynvml
        except ImportError:
            return None
        try:
            pynvml.nvmlInit()
            count = pynvml.nvmlDeviceGetCount()
        except pynvml.NVMLError:  # no driver or library here (LibraryNotFound, ...)
            return None
        wanted = range(count) if indexes is None else [i for i in indexes if 0 <= i < count]
        return cls(pynvml, list(wanted)) if wanted else None

    @staticmethod
    def device_count() -> int:
        """How many NVIDIA GPUs this machine has (0 without NVML)."""
        reader = GpuReader.open()
        return 0 if reader is None else len(reader._handles)

    @staticmethod
    def probe() -> tuple[int, str]:
        """How many NVIDIA GPUs this machine has and, with none, why (NVML's own words)."""
        try:
            import pynvml
        except ImportError:
            return 0, "nvidia-ml-py is not installed"
        try:
            pynvml.nvmlInit()
        except pynvml.NVMLError as e:  # no driver or library here
            return 0, f"no NVIDIA driver answers: {e}"
        try:
            count = int(pynvml.nvmlDeviceGetCount())
        except pynvml.NVMLError as e:
            return 0, f"NVML cannot count the devices: {e}"
        finally:
            with contextlib.suppress(pynvml.NVMLError):
                pynvml.nvmlShutdown()
        return count, "" if count else "NVML sees no device"

    def read(self) -> tuple[GpuMetrics, ...]:
        """One sample per device."""
        return tuple(self._one(index, handle) for index, handle in self._handles)

    def _one(self, index: int, handle: Any) -> GpuMetrics:
        nvml = self._nvml
        util = self._maybe(lambda: nvml.nvmlDeviceGetUtilizationRates(handle).gpu)
        memory = self._maybe(lambda: nvml.nvmlDeviceGetMemoryInfo(handle))
        temp = self._maybe(lambda: nvml.nvmlDeviceGetTemperature(handle, nvml.NVML_TEMPERATURE_GPU))
        power = self._maybe(lambda: nvml.nvmlDeviceGetPowerUsage(handle))
        return GpuMetrics(
            index=index,
            utilization_percent=None if util is None else float(util),
            memory_used=None if memory is None else int(memory.used),
            memory_total=None if memory is None else int(memory.total),
            temperature_c=None if temp is None else float(temp),
            power_w=None if power is None else power / 1000.0,  # NVML reports milliwatts
        )

    def _maybe(self, read: Callable[[], T]) -> T | None:
        try:
            return read()
        except self._nvml.NVMLError:
            return None

    def close(self) -> None:
        """Release NVML."""
        with contextlib.suppress(self._nvml.NVMLError):  # already shut down: nothing to do
            self._nvml.nvmlShutdown()
