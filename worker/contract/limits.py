"""A test's limits: one model, from the decoded submission through the run's messages to the
sandbox job (:func:`worker.judging.runs.program_job`).

Each field says all there is to know of one limit: its contract default, what it bounds (the
wire's description) and the operator's ceiling (:class:`Ceiling`: the setting
``RUNNER_MAX_<FIELD>`` and its default). The wire form (:func:`wire_limits`, all optional), the
settings that cap each limit (:func:`ceiling_settings`) and the maxima a submission is held to
are read from these fields, so a new limit is a field here plus its enforcement in the sandbox.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, create_model


@dataclass(frozen=True)
class Ceiling:
    """The operator's ceiling on a limit: its setting's default, what the setting says, and the
    lowest value the setting takes."""

    default: int
    doc: str
    low: int = 1


class Limits(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    cpu_time_ms: Annotated[int, Ceiling(10_000, "Highest CPU time limit a submission may set.")] = (
        Field(2000, ge=1, description="CPU time")
    )
    wall_time_ms: Annotated[
        int, Ceiling(30_000, "Highest wall time limit a submission may set.")
    ] = Field(5000, ge=1, description="Wall-clock time")
    memory_mb: Annotated[
        int, Ceiling(512, "Highest memory limit; also each sandbox's ceiling.", low=16)
    ] = Field(256, ge=1, description="Peak memory")
    output_kb: Annotated[int, Ceiling(16_384, "Highest output limit a submission may set.")] = (
        Field(1024, ge=1, description="Standard output")
    )
    processes: Annotated[int, Ceiling(64, "Highest processes limit a submission may set.")] = Field(
        8, ge=1, description="Processes and threads"
    )


def ceiling(name: str) -> Ceiling:
    """The ceiling of the limit ``name``."""
    found = [m for m in Limits.model_fields[name].metadata if isinstance(m, Ceiling)]
    return found[0]


def ceilings() -> Limits:
    """Each limit at its ceiling's default: what a fleet allows unless its operator says."""
    return Limits(**{name: ceiling(name).default for name in Limits.model_fields})


def ceiling_setting(name: str) -> str:
    """The setting (a field of :class:`worker.settings.Settings`) that caps the limit ``name``."""
    return f"max_{name}"


def wire_limits(base: type[BaseModel]) -> type[BaseModel]:
    """The wire form of :class:`Limits` on ``base``: every limit optional (absent, its
    default), each described with its default."""
    fields: dict[str, Any] = {
        name: (
            int | None,
            Field(None, ge=1, description=f"{field.description}, default {field.default}"),
        )
        for name, field in Limits.model_fields.items()
    }
    return create_model("LimitsIn", __base__=base, **fields)
