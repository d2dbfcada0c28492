"""SchematicService servicer: proto ↔ domain only."""

from __future__ import annotations

from typing import Any

from imagefactory.v1 import common_pb2, schematic_pb2, schematic_pb2_grpc
from services.schematic.canonical import options_yaml
from services.schematic.model import Bootloader, Schematic
from services.schematic.service import Schematics

BOOTLOADERS = {
    Bootloader.NONE: common_pb2.BOOTLOADER_UNSPECIFIED,
    Bootloader.DUAL_BOOT: common_pb2.BOOTLOADER_DUAL_BOOT,
    Bootloader.SD_BOOT: common_pb2.BOOTLOADER_SD_BOOT,
    Bootloader.GRUB: common_pb2.BOOTLOADER_GRUB,
}


def schematic_message(schematic: Schematic) -> schematic_pb2.Schematic:
    c = schematic.customization
    return schematic_pb2.Schematic(
        overlay=schematic_pb2.Overlay(
            image=schematic.overlay.image,
            name=schematic.overlay.name,
            options_yaml=options_yaml(schematic.overlay.options),
        ),
        customization=schematic_pb2.Customization(
            embedded_machine_configuration=c.embedded_machine_configuration,
            extra_kernel_args=list(c.extra_kernel_args),
            meta=[common_pb2.MetaValue(key=m.key, value=m.value) for m in c.meta],
            official_extensions=list(c.system_extensions.official_extensions),
            bootloader=BOOTLOADERS[c.bootloader],
            secureboot=schematic_pb2.SecureBootCustomization(
                enroll_keys=c.secureboot.enroll_keys,
                include_well_known_certificates=c.secureboot.include_well_known_certificates,
            ),
            disk_image_sector_size=c.disk_image.sector_size,
        ),
    )


class SchematicServicer(schematic_pb2_grpc.SchematicServiceServicer):
    def __init__(self, schematics: Schematics) -> None:
        self._schematics = schematics

    async def CreateSchematic(
        self, request: schematic_pb2.CreateSchematicRequest, context: Any
    ) -> schematic_pb2.CreateSchematicResponse:
        stored, created = await self._schematics.create(request.body)
        return schematic_pb2.CreateSchematicResponse(
            id=stored.id, canonical_yaml=stored.canonical_yaml, created=created
        )

    async def GetSchematic(
        self, request: schematic_pb2.GetSchematicRequest, context: Any
    ) -> schematic_pb2.GetSchematicResponse:
        stored = await self._schematics.get(request.id)
        return schematic_pb2.GetSchematicResponse(
            id=stored.id, canonical_yaml=stored.canonical_yaml, schematic=schematic_message(stored.schematic)
        )
