"""Schematic bytes → `Schematic`, as `schematic.Unmarshal` + `Validate` do (spec §2.2, §6.2, §6.4).

The Go service decodes with go-yaml v4, `KnownFields(true)`, one document; every decode error is
an InvalidArgument whose text mimics go-yaml's, e.g.
`yaml: construct errors: line 1: field something not found in type schematic.Schematic`.
"""

from __future__ import annotations

from typing import Any

from services.schematic import construct as c
from services.schematic.model import (
    Bootloader,
    Customization,
    DiskImageCustomization,
    MetaValue,
    Overlay,
    Schematic,
    SecureBootCustomization,
    SystemExtensions,
)
from services.schematic.yamltree import compose_first_document
from services.shared.errors import InvalidArgument


def _struct(go_name: str, make: Any, **fields: tuple[str, c.Target]) -> c.StructTarget:
    return c.StructTarget(go_name, fields, make)


_STRINGS = c.SeqTarget(c.STRING, "[]string")

_META_VALUE = _struct(
    "schematic.MetaValue",
    MetaValue,
    key=("key", c.UintTarget("uint8", 8)),
    value=("value", c.STRING),
)
_SCHEMATIC = _struct(
    "schematic.Schematic",
    Schematic,
    owner=("owner", c.STRING),
    overlay=(
        "overlay",
        _struct(
            "schematic.Overlay",
            Overlay,
            image=("image", c.STRING),
            name=("name", c.STRING),
            options=("options", c.MapTarget(c.STRING)),
        ),
    ),
    customization=(
        "customization",
        _struct(
            "schematic.Customization",
            Customization,
            embeddedMachineConfiguration=("embedded_machine_configuration", c.STRING),
            extraKernelArgs=("extra_kernel_args", _STRINGS),
            meta=("meta", c.SeqTarget(_META_VALUE, "[]schematic.MetaValue")),
            systemExtensions=(
                "system_extensions",
                _struct(
                    "schematic.SystemExtensions",
                    SystemExtensions,
                    officialExtensions=("official_extensions", _STRINGS),
                ),
            ),
            bootloader=(
                "bootloader",
                c.EnumTarget("imageropts.BootloaderKind", "BootloaderKind", {kind.value: kind for kind in Bootloader}),
            ),
            secureboot=(
                "secureboot",
                _struct(
                    "schematic.SecureBootCustomization",
                    SecureBootCustomization,
                    enrollKeys=("enroll_keys", c.STRING),
                    includeWellKnownCertificates=("include_well_known_certificates", c.BoolTarget()),
                ),
            ),
            diskImage=(
                "disk_image",
                _struct(
                    "schematic.DiskImageCustomization",
                    DiskImageCustomization,
                    sectorSize=("sector_size", c.UintTarget("uint", 64)),
                ),
            ),
        ),
    ),
)


def decode_schematic(body: bytes) -> Schematic:
    """Go `schematic.Unmarshal`: strict decoding, no semantic validation (use for stored bytes)."""
    root = compose_first_document(body)
    if root is None:
        raise InvalidArgument("EOF")  # Go `Decoder.Decode` on a stream without documents
    constructor = c.Constructor()
    ok, value = constructor.run(root, _SCHEMATIC)
    if constructor.errors:
        raise InvalidArgument("yaml: construct errors: " + "; ".join(constructor.errors))
    # A null document (`---`, `~`) leaves Go's struct at its zero value.
    return value if ok and isinstance(value, Schematic) else Schematic()


def validate_schematic(schematic: Schematic, *, enterprise: bool = False) -> None:
    """Go `Schematic.Validate`: the community edition only refuses an owner."""
    if not enterprise and schematic.owner:
        raise InvalidArgument("owner field is only supported in Enterprise edition")


def parse_schematic(body: bytes, *, enterprise: bool = False) -> Schematic:
    """Decode and validate a schematic as `POST /schematics` does."""
    schematic = decode_schematic(body)
    validate_schematic(schematic, enterprise=enterprise)
    return schematic
