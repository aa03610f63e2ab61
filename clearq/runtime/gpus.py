"""The GPUs an agent owns, and which of them each running task holds.

Static (``--gpus 0,1``): every task the agent runs sees all of its devices. Dynamic
(``--dynamic-gpus``): the devices are a pool; a task is claimed only from a queue whose
per-task need fits what is free now, and it gets that many distinct devices, given back
when it ends. No two running tasks ever hold the same device.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence

from clearq.errors import InvalidInput


class GpuPool:
    """Devices by name (``"0"``, ``"1"``, ...) and which are free."""

    def __init__(self, devices: Sequence[str], *, dynamic: bool) -> None:
        if len(set(devices)) != len(devices):
            raise InvalidInput(f"GPU devices named more than once: {list(devices)}")
        self.devices = tuple(devices)
        self.dynamic = dynamic
        self._free = list(devices)
        self._lock = threading.Lock()

    @property
    def free(self) -> tuple[str, ...]:
        """The devices no running task holds (dynamic); all of them (static)."""
        with self._lock:
            return tuple(self._free) if self.dynamic else self.devices

    def claimable_queues(self, needs: Mapping[str, int]) -> list[str]:
        """The queues, in the order given, whose per-task GPU need fits now."""
        if not self.dynamic:
            return list(needs)
        free = len(self.free)
        return [queue for queue, need in needs.items() if need <= free]

    def take(self, need: int) -> tuple[str, ...] | None:
        """Devices for one task: ``need`` distinct free ones (dynamic), or all (static).

        None when a dynamic pool has fewer than ``need`` free.
        """
        if not self.dynamic:
            return self.devices
        with self._lock:
            if need > len(self._free):
                return None
            taken, self._free = self._free[:need], self._free[need:]
            return tuple(taken)

    def give_back(self, devices: Sequence[str]) -> None:
        """Return a finished task's devices to the pool (dynamic)."""
        if not self.dynamic:
            return
        with self._lock:
            for device in devices:
                if device in self._free or device not in self.devices:
                    raise InvalidInput(f"GPU {device} was not taken from this pool")
                self._free.append(device)
            self._free.sort(key=self.devices.index)


def parse_gpus(
    text: str | None, *, cpu_only: bool, detected: int | None, why: str = ""
) -> tuple[str, ...] | None:
    """The ``--gpus`` flag: ``0,1`` or ``all``; None without it; ``()`` with ``--cpu-only``.

    ``detected`` is how many GPUs this machine has (``why``: why none), and the devices
    named must be among them; None: the devices are taken as named, unchecked.
    """
    if cpu_only:
        if text:
            raise InvalidInput("--gpus and --cpu-only contradict each other: give one")
        return ()
    if text is None:
        return None
    if text.strip().lower() == "all":
        return _all_devices(detected, why)
    devices = tuple(part.strip() for part in text.split(",") if part.strip())
    if not devices or not all(d.isdigit() for d in devices):
        raise InvalidInput(f"--gpus {text!r}: give device numbers such as 0,1 or 'all'")
    if detected is not None:
        _check_present(text, devices, detected, why)
    return devices


def _all_devices(detected: int | None, why: str) -> tuple[str, ...]:
    if detected is None:
        raise InvalidInput("--gpus all needs the devices found: name them instead (--gpus 0,1)")
    if detected == 0:
        raise InvalidInput(f"--gpus all: {_no_gpu(why)}")
    return tuple(str(i) for i in range(detected))


def _check_present(text: str, devices: Sequence[str], detected: int, why: str) -> None:
    missing = [d for d in devices if int(d) >= detected]
    if not missing:
        return
    if detected == 0:
        raise InvalidInput(f"--gpus {text}: {_no_gpu(why)}")
    found = ",".join(str(i) for i in range(detected))
    raise InvalidInput(
        f"--gpus {text}: this machine has no GPU {', '.join(missing)} (it has {found}); "
        "name devices it has"
    )


def _no_gpu(why: str) -> str:
    reason = f" ({why})" if why else ""
    return (
        f"no GPU was found on this machine{reason}; leave out --gpus (or give --cpu-only), "
        "or add --unchecked-gpus to take the devices as named"
    )
