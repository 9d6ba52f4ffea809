"""API v1's operations, declared next to their routes, and the OpenAPI 3.1 document made from them.

Each JSON route says what it is with :func:`operation`: a summary, the pydantic model it reads
(``body``, ``query``), the model it answers with (``response``, ``status``) and any answers of its
own (``responses``). The route returns an instance of its response model (or ``(model, status)``)
and :func:`operation` writes it as JSON, so the model is the one description of the shape: it
drives the response and ``/api/v1/openapi.json`` (built by :func:`document` from the app's URL map
and ``Model.model_json_schema()``, models under ``components/schemas``).

Adding an endpoint
------------------

1. Describe what it reads and what it answers as pydantic models next to the service that does
   the work (``ThingIn`` for input, ``ThingPublic`` for output; times as :data:`intranet.shapes.Time`).
2. Write the route on an API blueprint (one whose name ends in ``api``, mounted under ``/api/v1``)::

       @bp.put("/posts/<int:post_id>/rating")
       @operation("Rate a post you can see", body=ratings.RatingIn, response=ratings.RatingPublic,
                  responses={429: "Over INTRANET_RATINGS_PER_MINUTE"})
       @require_role("employee")
       def rate(post_id: int) -> ratings.RatingPublic:
           ...
           return ratings.RatingPublic.of(rating)

3. That is all. The path, its parameters (``<int:...>`` is a positive 32-bit id) and the method
   come from the route; 401 and 403 from :func:`~intranet.web.context.require_role` (``@public``
   routes have no security); 404 from a path parameter; 400, 413 and 422 from a body. ``scope=``
   opens the route to API keys holding that scope (:mod:`intranet.api_keys`): the document then
   lists the bearer scheme with the scope, the key's 429 and, for scopes that act for a person,
   the ``X-Beacon-On-Behalf-Of`` header.
   ``tests/test_platform.py`` fails for an API route without an operation, ``tests/test_api_fuzz.py``
   fuzzes it from the document, and ``tests/test_api_shapes.py`` records its answers' shapes.

There is no other way to document a route: the document has no hand-written paths or schemas.
"""
from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from flask import current_app, url_for
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from intranet import api_keys
from intranet.db import MAX_ID
from intranet.web.context import settings
from intranet.web.errors import ErrorPublic

F = TypeVar("F", bound=Callable[..., Any])
REF = "#/components/schemas/{model}"

#: Ids are positive 32-bit integers (a larger one is a 404, like an id that does not exist).
ID = {"type": "integer", "minimum": 1, "maximum": MAX_ID}


@dataclasses.dataclass(frozen=True)
class Operation:
    """What one API route reads and answers, for its JSON and for the OpenAPI document."""

    summary: str
    #: The model a success answers with (``None``: no JSON body).
    response: type[BaseModel] | None = None
    #: The status of a success.
    status: int = 200
    #: What a success means, for the document (default: the response model's docstring).
    returns: str = ""
    #: The JSON body the route reads; ``body_required=False`` when it may be left out.
    body: type[BaseModel] | None = None
    body_required: bool = True
    #: The multipart/form-data field that carries an uploaded file (instead of a JSON body).
    upload: str | None = None
    #: The query parameters, one a field of this model.
    query: type[BaseModel] | None = None
    #: The route's other answers: ``{status: description}`` (errors answer with :class:`ErrorPublic`),
    #: or ``{status: (description, model)}``.
    responses: Mapping[int, str | tuple[str, type[BaseModel] | None]] = dataclasses.field(default_factory=dict)
    description: str | None = None
    #: The API key scope that opens this route to server-to-server clients (see intranet/api_keys.py);
    #: ``None``: only people signed in to Beacon may call it.
    scope: str | None = None

    def __post_init__(self) -> None:
        if self.scope is not None and self.scope not in api_keys.SCOPES:
            raise ValueError(f"Unknown API key scope {self.scope!r}; the scopes are {', '.join(api_keys.SCOPES)}.")

    def __call__(self, view: F) -> F:
        """Declare *view* as this operation.

        The view may return a model instance, ``(model, status)`` or ``(model, status, headers)``;
        models are written as JSON by the names the document shows (aliases such as ``from``).
        """

        @functools.wraps(view)
        def serialized(*args: Any, **kwargs: Any) -> Any:
            return _serialize(view(*args, **kwargs))

        serialized.operation = self  # type: ignore[attr-defined]
        return serialized  # type: ignore[return-value]


#: Declare an API view: ``@operation("Summary", body=ThingIn, response=ThingPublic)`` (an :class:`Operation`).
operation = Operation


def _serialize(result: Any) -> Any:
    if isinstance(result, tuple):
        return (_serialize(result[0]), *result[1:])
    if isinstance(result, BaseModel):
        return current_app.json.response(result.model_dump(mode="json", by_alias=True))
    return result


# --------------------------------------------------------------------------------------------
# The document
# --------------------------------------------------------------------------------------------

_PARAMETER = re.compile(r"<(?:(\w+)(?:\([^)]*\))?:)?(\w+)>")


def _path_parameters(rule: str) -> list[dict[str, Any]]:
    return [{"name": name, "in": "path", "required": True,
             "schema": ID if converter == "int" else {"type": "string"}}
            for converter, name in _PARAMETER.findall(rule)]


def _query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    schema = model.model_json_schema()
    required = set(schema.get("required", ()))
    out = []
    for name, field in schema["properties"].items():
        # An optional parameter is left out, never sent as null: document only its value's type.
        kinds = [k for k in field.get("anyOf", ()) if k.get("type") != "null"]
        if len(kinds) == 1:
            field = {**{k: v for k, v in field.items() if k not in ("anyOf", "default")}, **kinds[0]}
        field.pop("title", None)
        description = field.pop("description", None)
        parameter: dict[str, Any] = {"name": name, "in": "query", "schema": field}
        if description:
            parameter["description"] = description
        if name in required:
            parameter["required"] = True
        out.append(parameter)
    return out


def _json(schema: Any) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, **_json({"$ref": REF.format(model="ErrorPublic")})}


def _describe(model: type[BaseModel] | None) -> str:
    doc = (model.__doc__ or "").strip() if model is not None else ""
    return doc.splitlines()[0] if doc else "Done"


class _Schemas:
    """The models the operations name, turned into ``components/schemas`` in one pass."""

    def __init__(self) -> None:
        self.wanted: dict[tuple[type[BaseModel], str], None] = {(ErrorPublic, "serialization"): None}

    def ref(self, model: type[BaseModel], mode: str) -> dict[str, Any]:
        """A placeholder for *model*'s schema, filled in by :meth:`resolve`."""
        self.wanted[(model, mode)] = None
        return {"__model__": (model, mode)}

    def resolve(self, document: Any, components: dict[str, Any]) -> Any:
        refs, defs = models_json_schema(list(self.wanted), ref_template=REF)  # type: ignore[arg-type]
        components.update(defs.get("$defs", {}))

        def fill(node: Any) -> Any:
            if isinstance(node, dict):
                if "__model__" in node:
                    return refs[node["__model__"]]
                return {key: fill(value) for key, value in node.items()}
            if isinstance(node, list):
                return [fill(item) for item in node]
            return node

        return fill(document)


def _documented(spec: Operation, rule: str, public: bool, schemas: _Schemas) -> dict[str, Any]:
    out: dict[str, Any] = {"summary": spec.summary}
    if spec.description:
        out["description"] = spec.description
    parameters = _path_parameters(rule) + (_query_parameters(spec.query) if spec.query else [])
    if parameters:
        out["parameters"] = parameters
    if public:
        out["security"] = []
    elif spec.scope is not None:
        # A signed-in person's session, or an API key holding the scope (OpenAPI 3.1 lists roles
        # for any scheme): the scope is also in x-beacon-scope, for tools that ignore the list.
        out["security"] = [{"session": []}, {"apiKey": [spec.scope]}]
        out["x-beacon-scope"] = spec.scope
        if api_keys.SCOPES[spec.scope].on_behalf:
            parameters.append({
                "name": api_keys.ON_BEHALF_HEADER, "in": "header", "schema": {"type": "string", "maxLength": 320},
                "description": "With an API key (required then): the employee the request acts for, by email "
                               "address or employee number. Ignored for signed-in people."})
            out["parameters"] = parameters
    if spec.body is not None:
        out["requestBody"] = {"required": spec.body_required, **_json(schemas.ref(spec.body, "validation"))}
    if spec.upload is not None:
        out["requestBody"] = {"required": True, "content": {"multipart/form-data": {"schema": {
            "type": "object", "required": [spec.upload],
            "properties": {spec.upload: {"type": "string", "format": "binary"}}}}}}
    success: dict[str, Any] = {"description": spec.returns or _describe(spec.response)}
    if spec.response is not None:
        success.update(_json(schemas.ref(spec.response, "serialization")))
    responses = {str(spec.status): success}
    if spec.scope is not None and api_keys.SCOPES[spec.scope].on_behalf:
        responses["422"] = _error("Invalid input; with an API key also: X-Beacon-On-Behalf-Of names nobody "
                                  "Beacon can act for")
    if spec.scope is not None:
        responses["429"] = {"description": "An API key over INTRANET_API_KEY_REQUESTS_PER_MINUTE; Retry-After "
                                           "says when to try again", **_json(schemas.ref(ErrorPublic, "serialization")),
                            "headers": {"Retry-After": {"schema": {"type": "integer"}}}}
    for status, answer in spec.responses.items():
        description, model = answer if isinstance(answer, tuple) else (answer, ErrorPublic if status >= 400 else None)
        responses[str(status)] = {"description": description,
                                  **(_json(schemas.ref(model, "serialization")) if model else {})}
        if status == 429:  # Beacon's TooManyRequests always says when to come back
            responses[str(status)]["headers"] = {"Retry-After": {"schema": {"type": "integer"}}}
    out["responses"] = responses
    return out


def _with_errors(path: str, method: str, operation: dict[str, Any]) -> dict[str, Any]:
    """*operation* with every error Beacon may answer it with (those it documents itself kept)."""
    errors: dict[str, Any] = {}
    if operation.get("security") != []:
        errors["401"] = _error("Not signed in, or an API key that is malformed, unknown, revoked or expired")
        errors["403"] = _error("Signed in without the role this needs, or an API key without the scope")
    if "{" in path:
        errors["404"] = _error("Missing, or not yours to see (indistinguishable)")
    if "requestBody" in operation or method in ("post", "put", "patch"):
        errors["400"] = _error("The body cannot be read: not JSON, nested too deeply, or not valid Unicode")
        errors["413"] = _error("The body is larger than INTRANET_MAX_REQUEST_BYTES")
        errors["422"] = _error("Invalid input; the message and details say which field and why")
    if any(p.get("in") == "query" for p in operation.get("parameters", ())):
        errors["422"] = _error("Invalid query parameter")
    return {**operation, "responses": {**errors, **operation.get("responses", {})}}


def operations() -> dict[str, dict[str, tuple[str, Operation, bool]]]:
    """This app's declared API operations: ``{path: {method: (rule, operation, public)}}`` (OpenAPI paths)."""
    base = f"{settings().site.url_prefix}/api/v1"
    found: dict[str, dict[str, tuple[str, Operation, bool]]] = {}
    for rule in current_app.url_map.iter_rules():
        view = current_app.view_functions.get(rule.endpoint)
        spec = getattr(view, "operation", None)
        if spec is None or not rule.rule.startswith(base + "/"):
            continue
        path = _PARAMETER.sub(r"{\2}", rule.rule[len(base):])
        public = getattr(view, "intranet_role", "") is None
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            found.setdefault(path, {})[method.lower()] = (rule.rule, spec, public)
    return found


def document() -> dict[str, Any]:
    """The OpenAPI document for this app (server URL includes the configured prefix)."""
    schemas = _Schemas()
    paths: dict[str, dict[str, Any]] = {}
    for path, methods in operations().items():
        for method, (rule, spec, public) in methods.items():
            paths.setdefault(path, {})[method] = _documented(spec, rule, public, schemas)
    components: dict[str, Any] = {}
    paths = schemas.resolve(paths, components)
    paths = {path: {method: _with_errors(path, method, op) for method, op in sorted(methods.items())}
             for path, methods in sorted(paths.items())}
    cookie = current_app.session_interface.cookie_name(current_app)  # type: ignore[attr-defined]
    return {
        "openapi": "3.1.0",
        "info": {"title": f"{settings().site.org_name} API", "version": "1"},
        "servers": [{"url": url_for("intranet_api.openapi").rsplit("/openapi.json", 1)[0]}],
        "components": {
            "schemas": components,
            "securitySchemes": {
                "session": {"type": "apiKey", "in": "cookie", "name": cookie},
                "csrf": {"type": "apiKey", "in": "header", "name": "X-CSRFToken"},
                "apiKey": {"type": "http", "scheme": "bearer", "bearerFormat": "bcn_<prefix>_<secret>",
                           "description": "An API key from an admin (/admin/api-keys). An operation open to keys "
                                          "names the scope it needs in its security requirement and in "
                                          "x-beacon-scope. " + " ".join(
                                              f"{name}: {info.description}" for name, info in api_keys.SCOPES.items())},
            },
        },
        "security": [{"session": []}],
        "paths": paths,
    }
