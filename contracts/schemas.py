"""JSON Schema files for producers, generated from the contracts and kept in the repo."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from contracts.events import CONTRACTS


def json_schemas() -> dict[str, dict[str, Any]]:
    schemas = {}
    for name, model in CONTRACTS.items():
        schema = model.model_json_schema(mode="validation")
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["$id"] = f"streamrank/{name}.schema.json"
        schemas[name] = schema
    return schemas


def render(schema: dict[str, Any]) -> bytes:
    return orjson.dumps(schema, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"


def write_schemas(out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, schema in json_schemas().items():
        path = out_dir / f"{name}.schema.json"
        path.write_bytes(render(schema))
        paths.append(path)
    return paths


def stale_schemas(out_dir: Path) -> list[str]:
    """Names whose file is missing or differs from what the code generates."""
    return [
        name
        for name, schema in json_schemas().items()
        if not (p := out_dir / f"{name}.schema.json").exists() or p.read_bytes() != render(schema)
    ]
