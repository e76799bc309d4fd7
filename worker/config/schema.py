"""The config's JSON Schema, generated from the pydantic models (`worker schema`).

Editors that read `#:schema` (taplo: VS Code "Even Better TOML", Helix, Zed) complete keys and
flag unknown ones with it. The published copy is docs/worker.schema.json; a test checks that it
is what `worker schema` prints (regenerate: `python3 -m worker schema > docs/worker.schema.json`).
"""

from __future__ import annotations

import json
from typing import Any

from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue

from worker.config.models import Config, parse_duration

SCHEMA_ID = "https://news-listing-worker.invalid/worker.schema.json"
# what parse_duration accepts: "15m", "1h30m", "500ms", "1.5h" (a number of seconds is a number)
DURATION_PATTERN = r"^\s*(\d+(\.\d+)?\s*(ms|s|m|h|d)\s*)+$"


class _Generator(GenerateJsonSchema):
    """Describes what the TOML may hold, not the model after validation: a duration is a number
    of seconds or a string with units, and a field whose before-validator expands a shorthand
    (a selector as a bare CSS string, one channel URL for a list) also takes a string."""

    def function_before_schema(self, schema: Any) -> JsonSchemaValue:
        inner = self.generate_inner(schema["schema"])
        function = schema["function"].get("function")
        if getattr(function, "__name__", "") == "_channel_tables":  # the model's own: a table
            return inner
        if function is parse_duration:
            text = {"type": "string", "pattern": DURATION_PATTERN}
            number = {"minimum": 0} | {k: v for k, v in inner.items() if k != "type"}
            number["type"] = "number"
            return {"anyOf": [number, text]}
        if inner.get("type") == "string":
            return inner
        return {"anyOf": [{"type": "string"}, inner]}

    def generate(self, schema: Any, mode: Any = "validation") -> JsonSchemaValue:
        out = super().generate(schema, mode=mode)
        # `[channels.NAME]` tables are validated as channel_settings (not a key of the file)
        props = out.get("properties", {})
        settings = props.pop("channel_settings", None)
        if settings is not None and "channels" in props:
            urls = props["channels"].get("additionalProperties", {})
            tables = settings.get("additionalProperties", {})
            props["channels"]["additionalProperties"] = {"anyOf": [urls, tables]}
        return {
            "$schema": self.schema_dialect,
            "$id": SCHEMA_ID,
            "title": "worker config",
            "description": "Config of the worker daemon (worker.toml); see README.md.",
            **{k: v for k, v in out.items() if k not in ("title", "description")},
        }


def config_schema() -> dict[str, Any]:
    """The JSON Schema of a config file."""
    return Config.model_json_schema(schema_generator=_Generator, mode="validation")


def config_schema_text() -> str:
    """The schema as `worker schema` prints it and docs/worker.schema.json holds it."""
    return json.dumps(config_schema(), indent=2, ensure_ascii=False, sort_keys=False) + "\n"
