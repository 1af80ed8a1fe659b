"""The ``litmus:`` extension of pyvisa-sim simulation files, read and validated.

pyvisa-sim ignores keys it does not know, so a simulation file may carry, on a
device or on a resource, a ``litmus:`` mapping::

    devices:
      dmm:
        litmus:
          operations:
            INIT: 0.2                       # INIT completes 0.2 s after it is received
            "CAL:SELF": {seconds: 1.5, device_error: '-330,"Self-test failed"'}
          service_requests: true            # enable_event(service_request) supported
          serial_poll: true                 # read_stb supported
          blocks:                           # block answers (IEEE 488.2 definite length)
            "CURV?": {datatype: h, values: [0, 512, -512]}    # struct code, little-endian
            "DATA?": {hex: "00ff10"}                          # or base64: "AP8Q"
          faults:                           # see pytest_litmus.sim.faults
            - {kind: timeout, on: "READ?", after: 2, count: 1}
    resources:
      GPIB0::9::INSTR:
        device: dmm
        litmus: {service_requests: false}   # per resource, over the device's

Every mistake is a :class:`~pytest_litmus.errors.StationConfigError` naming
the file, the key path and what was expected.
"""

from __future__ import annotations

import base64
import binascii
import math
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple, NoReturn

from pytest_litmus.errors import StationConfigError
from pytest_litmus.sim.blocks import MAX_BLOCK, pack
from pytest_litmus.sim.faults import FaultSpec, parse_fault
from pytest_litmus.yamlfile import read_yaml

__all__ = ["DeviceExtension", "Operation", "load_extensions"]

_EXTENSION_KEYS = ("operations", "service_requests", "serial_poll", "blocks", "faults")
_BLOCK_KEYS = ("datatype", "values", "big_endian", "hex", "base64")
_DATATYPES = "bBhHiIlLqQefd"
_OPERATION_KEYS = ("seconds", "device_error")


class Operation(NamedTuple):
    """A command that starts an operation completing ``seconds`` later."""

    command: str
    seconds: float
    device_error: str | None = None


class DeviceExtension:
    """What the ``litmus:`` keys say about one simulated resource (read-only by contract).

    A plain class: a dataclass costs start-up time (docs/performance.md).
    """

    __slots__ = ("blocks", "faults", "operation_by_header", "operations", "serial_poll", "service_requests")

    def __init__(
        self,
        operations: tuple[Operation, ...] = (),
        service_requests: bool = True,
        serial_poll: bool = True,
        blocks: tuple[tuple[str, bytes], ...] = (),
        faults: tuple[FaultSpec, ...] = (),
    ) -> None:
        self.operations = operations
        self.service_requests = service_requests
        self.serial_poll = serial_poll
        #: block answers: (query header, upper-cased, payload)
        self.blocks = blocks
        self.faults = faults
        #: Operations by upper-cased header; the first of a header wins.
        self.operation_by_header: dict[str, Operation] = {}
        for operation in operations:
            self.operation_by_header.setdefault(operation.command.upper(), operation)

    def operation_for(self, command: str) -> Operation | None:
        """The operation ``command`` starts (its header, case-insensitive, arguments allowed), if any."""
        return self.operation_by_header.get(command.split(" ", 1)[0].upper())


def load_extensions(path: str | Path) -> dict[str, DeviceExtension]:
    """The extension of each resource of the simulation file ``path``, by canonical resource name."""
    from pyvisa.rname import to_canonical_name

    path = Path(path)
    data = _read(path)
    extensions: dict[str, DeviceExtension] = {}
    resources = data.get("resources") or {}
    if not isinstance(resources, Mapping):
        return extensions
    for resource, spec in resources.items():
        if not isinstance(spec, Mapping) or spec.get("bundled") in (True, "true", "True"):
            continue
        device = spec.get("device")
        source, devices = (path, data)
        if spec.get("filename"):
            source = path.parent / str(spec["filename"])
            devices = _read(source)
        device_dict = (devices.get("devices") or {}).get(device) or {}
        ext = _parse(device_dict.get("litmus"), source, f"devices.{device}.litmus", DeviceExtension())
        ext = _parse(spec.get("litmus"), path, f"resources.{resource}.litmus", ext)
        extensions[to_canonical_name(str(resource))] = ext
    return extensions


def _read(path: Path) -> dict[str, Any]:
    data = read_yaml(path)
    return data if isinstance(data, dict) else {}


def _parse(raw: Any, file: Path, key: str, base: DeviceExtension) -> DeviceExtension:
    if raw is None:
        return base
    if not isinstance(raw, Mapping):
        raise StationConfigError(file, key, "a mapping with keys " + ", ".join(_EXTENSION_KEYS), raw)
    _no_unknown_keys(raw, _EXTENSION_KEYS, file, key)
    values: dict[str, Any] = {name: getattr(base, name) for name in _EXTENSION_KEYS}  # the keys are its fields
    for flag in ("service_requests", "serial_poll"):
        if flag in raw:
            if not isinstance(raw[flag], bool):
                raise StationConfigError(file, f"{key}.{flag}", "true or false", raw[flag])
            values[flag] = raw[flag]
    if "operations" in raw:
        values["operations"] = _operations(raw["operations"], file, f"{key}.operations")
    if "blocks" in raw:
        values["blocks"] = _blocks(raw["blocks"], file, f"{key}.blocks")
    if "faults" in raw:
        values["faults"] = _faults(raw["faults"], file, f"{key}.faults")
    return DeviceExtension(**values)


def _faults(raw: Any, file: Path, key: str) -> tuple[FaultSpec, ...]:
    if not isinstance(raw, list):
        raise StationConfigError(file, key, "a list of faults ({kind: timeout|disconnect|idn|drift|error, ...})", raw)
    specs = []
    for index, item in enumerate(raw):
        where = f"{key}[{index}]"

        def fail(name: str, expected: str, got: Any, where: str = where) -> NoReturn:
            raise StationConfigError(file, f"{where}.{name}" if name else where, expected, got)

        specs.append(parse_fault(item, fail))
    return tuple(specs)


def _blocks(raw: Any, file: Path, key: str) -> tuple[tuple[str, bytes], ...]:
    if not isinstance(raw, Mapping):
        raise StationConfigError(file, key, "a mapping of query (CURV?) to a block", raw)
    blocks = []
    for query, spec in raw.items():
        where = f"{key}.{query}"
        if not isinstance(query, str) or not query.strip().endswith("?") or not query.isascii():
            raise StationConfigError(file, where, "a query header ending in ?", query)
        if not isinstance(spec, Mapping):
            raise StationConfigError(file, where, "a mapping with values (and datatype), hex or base64", spec)
        _no_unknown_keys(spec, _BLOCK_KEYS, file, where)
        payload = _payload(spec, file, where)
        if len(payload) > MAX_BLOCK:
            raise StationConfigError(file, where, f"at most {MAX_BLOCK} bytes", found=f"{len(payload)} bytes")
        blocks.append((query.strip().upper(), payload))
    return tuple(blocks)


def _payload(spec: Mapping[str, Any], file: Path, where: str) -> bytes:
    given = [name for name in ("values", "hex", "base64") if name in spec]
    if len(given) != 1:
        raise StationConfigError(file, where, "exactly one of values, hex, base64", found=", ".join(given) or "none")
    if "hex" in spec:
        try:
            return bytes.fromhex(str(spec["hex"]))
        except ValueError:
            raise StationConfigError(file, f"{where}.hex", "hexadecimal digits", spec["hex"]) from None
    if "base64" in spec:
        try:
            return base64.b64decode(str(spec["base64"]), validate=True)
        except binascii.Error:
            raise StationConfigError(file, f"{where}.base64", "base64 text", spec["base64"]) from None
    datatype, values = spec.get("datatype", "B"), spec["values"]
    if not isinstance(datatype, str) or len(datatype) != 1 or datatype not in _DATATYPES:
        raise StationConfigError(file, f"{where}.datatype", "a struct code, one of " + _DATATYPES, datatype)
    big = spec.get("big_endian", False)
    if not isinstance(big, bool):
        raise StationConfigError(file, f"{where}.big_endian", "true or false", big)
    if not isinstance(values, list) or any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in values):
        raise StationConfigError(file, f"{where}.values", "a list of numbers", values)
    try:
        return pack(datatype, values, big)
    except struct.error as exc:
        raise StationConfigError(
            file, f"{where}.values", f"numbers that fit datatype {datatype} ({exc})", values
        ) from None


def _operations(raw: Any, file: Path, key: str) -> tuple[Operation, ...]:
    if not isinstance(raw, Mapping):
        raise StationConfigError(file, key, "a mapping of command to seconds", raw)
    operations = []
    for command, spec in raw.items():
        where = f"{key}.{command}"
        if not isinstance(command, str) or not command.strip():
            raise StationConfigError(file, where, "a command string", command)
        device_error = None
        if isinstance(spec, Mapping):
            _no_unknown_keys(spec, _OPERATION_KEYS, file, where)
            if "seconds" not in spec:
                raise StationConfigError(file, f"{where}.seconds", "a duration in seconds", has_got=False)
            device_error = spec.get("device_error")
            if device_error is not None and not isinstance(device_error, str):
                raise StationConfigError(
                    file, f"{where}.device_error", "an error string like '-300,\"Failed\"'", device_error
                )
            seconds = _seconds(spec["seconds"], file, f"{where}.seconds")
        else:
            seconds = _seconds(spec, file, where)
        operations.append(Operation(command.strip(), seconds, device_error))
    return tuple(operations)


def _seconds(raw: Any, file: Path, key: str) -> float:
    if isinstance(raw, bool) or not isinstance(raw, (int, float)) or not math.isfinite(raw) or raw < 0:
        raise StationConfigError(file, key, "a duration in seconds, a number >= 0", raw)
    return float(raw)


def _no_unknown_keys(raw: Mapping[Any, Any], allowed: tuple[str, ...], file: Path, key: str) -> None:
    for name in raw:
        if name not in allowed:
            raise StationConfigError(file, f"{key}.{name}", "one of " + ", ".join(allowed), name)
