"""Per-stage statistics files."""

from __future__ import annotations

import json
from pathlib import Path


def write_stage_stats(out_dir: Path, stage: str, counts: dict, **extra: object) -> Path:
    """Write ``out_dir/stats.json`` with the stage name, its counts and any extra fields."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "stats.json"
    payload = {"stage": stage, "counts": counts, **extra}
    path.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path


def read_stage_stats(out_dir: Path) -> dict | None:
    """Read ``out_dir/stats.json``, or return None when the stage has not written one."""
    path = Path(out_dir) / "stats.json"
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))
