"""Write api/openapi.json, the OpenAPI document of the HTTP API (tests check it is current).

    python -m api.openapi
"""
from __future__ import annotations

import json
from pathlib import Path

PATH = Path(__file__).resolve().parent / "openapi.json"


def render() -> str:
    from api.http_app import openapi_document
    return json.dumps(openapi_document(), indent=1, sort_keys=True) + "\n"


if __name__ == "__main__":
    PATH.write_text(render())
    print(f"wrote {PATH}")
