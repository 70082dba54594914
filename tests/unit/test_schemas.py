from pathlib import Path

import jsonschema
import orjson

from contracts.schemas import json_schemas, stale_schemas

REPO = Path(__file__).resolve().parents[2]


def test_committed_schema_files_match_the_code() -> None:
    assert stale_schemas(REPO / "schemas") == [], "run `streamrank schemas` and commit the files"


def test_schemas_accept_valid_and_reject_invalid_events() -> None:
    schema = json_schemas()["ActionEvent"]
    good = {"event_id": "a", "user_id": "u", "ts": 1, "item_id": "i", "action": "click"}
    jsonschema.validate(good, schema)
    bad = {**good, "action": "teleport"}
    try:
        jsonschema.validate(bad, schema)
    except jsonschema.ValidationError:
        pass
    else:
        raise AssertionError("schema accepted an unknown action")
    orjson.dumps(schema)  # serializable as published
