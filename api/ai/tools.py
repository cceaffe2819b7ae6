"""What the model may ask while answering a free question: the query API's read methods, with
their own request models as the functions' parameters (the same validation as a client's
request; the model never writes SQL). A call's names (HOST-n) are put back before it runs and
its answer is pseudonymised again before it goes back to the model."""
from __future__ import annotations

import json
from typing import Optional

from pydantic import ValidationError

from api import models as m
from api.ai.pseudonym import Pseudonyms

MAX_RESULT_CHARS = 20_000       # a tool's answer as the model sees it (a larger one is cut and says so)

# name -> (request model, QueryService method, what it answers)
FUNCTIONS = {
    "aggregate_flows": (m.AggregateFlowsRequest, "aggregate_flows",
                        "Packets, bytes and flows in a time range, filtered (src/dst networks, ports, protocols), "
                        "grouped by dimensions and/or time buckets, ordered, limited. Exact."),
    "list_alerts": (m.ListAlertsRequest, "list_alerts",
                    "Alerts active in a time range, by state, severity, rule or an address they are about."),
    "trace_flow": (m.TraceFlowRequest, "trace_flow", "One 5-tuple's windows: when it was seen and how much."),
}


def definitions() -> list[dict]:
    """The tools as a Chat Completions request offers them."""
    return [{"type": "function", "function": {"name": name, "description": text,
                                              "parameters": model.model_json_schema()}}
            for name, (model, _method, text) in FUNCTIONS.items()]


def run(service, name: str, arguments: str, names: Optional[Pseudonyms]) -> str:
    """A tool call's answer as text for the model: the API's answer as JSON, or `error: ...`
    (one line, as a client would get it) for the model to correct itself."""
    from api.queries import QueryError
    from api.service import Busy, NotFound, Unavailable
    if name not in FUNCTIONS:
        return f"error: no tool {name!r}; the tools are {', '.join(FUNCTIONS)}"
    model, method, _ = FUNCTIONS[name]
    try:
        args = json.loads(names.reveal(arguments) if names else arguments or "{}")
        req = model.model_validate(args)
    except ValueError as e:          # not JSON, or not a valid request (ValidationError is one)
        return "error: " + (m.problems(e, "arguments") if isinstance(e, ValidationError) else f"arguments: {e}")
    try:
        answer = getattr(service, method)(req).model_dump(mode="json")
    except (QueryError, NotFound, Busy, Unavailable) as e:
        return f"error: {e}"
    text = json.dumps(answer, separators=(",", ":"))
    if len(text) > MAX_RESULT_CHARS:
        text = text[:MAX_RESULT_CHARS] + f" … (cut at {MAX_RESULT_CHARS} characters: ask with a smaller limit)"
    return names.hide(text) if names else text
