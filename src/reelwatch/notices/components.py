"""What users rely on, in their words: the status page's components, the check that
watches each, and the key an incident names it by (``--components database,storage``)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ComponentSpec:
    key: str
    label: str
    check: str
    # Alert rules that take it down whatever its check said last, in users' words.
    emergencies: tuple[tuple[str, str], ...] = ()


COMPONENTS = (
    ComponentSpec("database", "Uploads and the database", "database"),
    ComponentSpec("storage", "Media storage", "storage"),
    ComponentSpec(
        "processing",
        "Video processing",
        "ping_ffmpeg",
        emergencies=(
            ("no_live_worker", "no worker is running: videos wait"),
            ("queue_stalled", "videos wait and none is being processed"),
        ),
    ),
    ComponentSpec("end_to_end", "Upload to ready, end to end", "e2e_probe"),
    ComponentSpec("email", "E-mail", "smtp"),
)
COMPONENT_KEYS = tuple(component.key for component in COMPONENTS)


def parse_components(text: str) -> list[str]:
    """``database, storage`` as known keys, in the page's order; empty or ``all``: none
    named (the incident affects the service as a whole). Raises ValueError on a key
    this release does not know."""
    named = {part.strip().lower() for part in text.split(",") if part.strip()}
    if named <= {"all"}:
        return []
    unknown = named - set(COMPONENT_KEYS)
    if unknown:
        raise ValueError(
            f"unknown component {', '.join(sorted(unknown))}: "
            f"choose from {', '.join(COMPONENT_KEYS)} or all"
        )
    return [key for key in COMPONENT_KEYS if key in named]
