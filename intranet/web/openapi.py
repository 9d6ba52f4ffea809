"""The OpenAPI 3.1 description of API v1, served at ``/api/v1/openapi.json``.

Paths are declared as data next to their schemas, so adding an endpoint is adding an entry.
"""
from __future__ import annotations

from typing import Any

from flask import current_app, url_for

from intranet.db import MAX_ID
from intranet.web.context import settings

ERROR = {"type": "object", "required": ["error"], "properties": {"error": {
    "type": "object", "required": ["code", "message"],
    "properties": {"code": {"type": "string"}, "message": {"type": "string"}, "details": {}}}}}
FEED_ITEM = {"type": "object", "required": ["id", "title", "summary", "topic", "must_read", "published_at", "read",
                                            "acknowledged"],
             "properties": {"id": {"type": "integer"}, "title": {"type": "string"}, "summary": {"type": "string"},
                            "topic": {"type": "string"}, "must_read": {"type": "boolean"},
                            "published_at": {"type": "string", "format": "date-time"},
                            "read": {"type": "boolean"}, "acknowledged": {"type": "boolean"},
                            "why": {"type": "array", "minItems": 1, "items": {"type": "string"},
                                    "description": "Plain-language reasons for the post's place in your feed"}}}
POST = {"allOf": [{"$ref": "#/components/schemas/FeedItem"}, {"type": "object", "properties": {
    "body_html": {"type": "string", "description": "Sanitized HTML"},
    "expires_at": {"type": ["string", "null"], "format": "date-time"},
    "ack_deadline": {"type": ["string", "null"], "format": "date-time"},
    "rating_style": {"enum": ["stars", "thumbs"]},
    "my_rating": {"anyOf": [{"$ref": "#/components/schemas/Rating"}, {"type": "null"}],
                  "description": "Your rating of this post, or null"}}}]}
SEARCH_HIT = {"type": "object", "required": ["id", "title", "summary", "topic", "must_read", "published_at", "snippet"],
              "properties": {"id": {"type": "integer"}, "title": {"type": "string"}, "summary": {"type": "string"},
                             "topic": {"type": "string"}, "must_read": {"type": "boolean"},
                             "published_at": {"type": ["string", "null"], "format": "date-time"},
                             "snippet": {"type": "string", "description": "Plain text around the first match"}}}
SEGMENT = {"type": "object", "additionalProperties": False, "properties": {
    **{k: {"type": "array", "items": {"type": "string"}}
       for k in ("departments", "divisions", "regions", "countries", "offices", "groups")},
    "level_min": {"type": "integer", "minimum": 1, "maximum": 10},
    "level_max": {"type": "integer", "minimum": 1, "maximum": 10}}}
AUDIENCE = {"type": "object", "additionalProperties": False, "properties": {
    "all": {"type": "boolean"}, "segments": {"type": "array", "items": {"$ref": "#/components/schemas/Segment"}},
    "exclude": {"type": "array", "items": {"$ref": "#/components/schemas/Segment"}}},
    "description": 'Either {"all": true} or one or more segments (OR-ed), minus exclusions. Inside a segment '
                   "dimensions are AND-ed and values OR-ed; level bounds are inclusive."}
COUNTS = {"type": "object", "additionalProperties": {"type": "integer"}}
PREVIEW = {"type": "object", "required": ["count", "by_department", "by_region", "by_level"], "properties": {
    "count": {"type": "integer"}, "by_department": COUNTS, "by_region": COUNTS, "by_level": COUNTS}}


def _json(schema: Any) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def _ok(description: str, schema: Any = None) -> dict[str, Any]:
    return {"description": description, **(_json(schema) if schema else {})}


ERRORS = {"401": _ok("Not signed in", {"$ref": "#/components/schemas/Error"}),
          "404": _ok("Missing, or not targeted at you (indistinguishable)", {"$ref": "#/components/schemas/Error"})}
#: Ids are positive 32-bit integers (a larger one is a 404, like an id that does not exist).
ID = {"type": "integer", "minimum": 1, "maximum": MAX_ID}
POST_ID = [{"name": "post_id", "in": "path", "required": True, "schema": ID}]
GROUP_KEY = [{"name": "key", "in": "path", "required": True, "schema": {"type": "string"}}]

PATHS: dict[str, dict[str, Any]] = {
    "/feed": {"get": {"summary": "Your feed: live posts targeted at you, unacknowledged must-reads first, then "
                                 "the rest in your ranked order (a cursor pages through the order taken on page one)",
                      "parameters": [{"name": "cursor", "in": "query", "schema": {"type": "string"}}],
                      "responses": {"200": _ok("A page", {"type": "object", "properties": {
                          "items": {"type": "array", "items": {"allOf": [
                              {"$ref": "#/components/schemas/FeedItem"}, {"required": ["why"]}]}},
                          "next_cursor": {"type": ["string", "null"]}}}), **ERRORS}}},
    "/search": {"get": {"summary": "Search the live posts targeted at you (every word, prefixes too), best match first",
                        "parameters": [{"name": "q", "in": "query", "required": True,
                                        "schema": {"type": "string", "maxLength": 200}},
                                       {"name": "limit", "in": "query",
                                        "schema": {"type": "integer", "minimum": 1, "maximum": 50, "default": 20}}],
                        "responses": {"200": _ok("Matches", {"type": "object", "required": ["query", "items"],
                                                             "properties": {"query": {"type": "string"}, "items": {
                                                                 "type": "array", "items": SEARCH_HIT}}}),
                                      **ERRORS}}},
    "/posts/{post_id}": {"get": {"summary": "A post targeted at you, with its body", "parameters": POST_ID,
                                 "responses": {"200": _ok("The post", {"$ref": "#/components/schemas/Post"}),
                                               **ERRORS}}},
    "/posts/{post_id}/read": {"post": {"summary": "Record that you opened the post", "parameters": POST_ID,
                                       "responses": {"200": _ok("Recorded"), **ERRORS}}},
    "/posts/{post_id}/acknowledge": {"post": {"summary": "Acknowledge a must-read post", "parameters": POST_ID,
                                              "responses": {"200": _ok("Acknowledged"), **ERRORS}}},
    "/audiences/preview": {"post": {
        "summary": "Exact audience size and breakdown (people who may write posts)",
        "requestBody": _json({"type": "object", "required": ["audience"],
                              "properties": {"audience": {"$ref": "#/components/schemas/Audience"}}}),
        "responses": {"200": _ok("Headcounts", PREVIEW),
                      "422": _ok("Invalid audience or unknown value (with suggestions)",
                                 {"$ref": "#/components/schemas/Error"}), **ERRORS}}},
    "/openapi.json": {"get": {"summary": "This document", "security": [], "responses": {"200": _ok("OpenAPI")}}},
    "/me": {"get": {"summary": "Who you are and your roles", "responses": {"200": _ok("You"), **ERRORS}}},
    "/groups": {"get": {"summary": "Groups and whether you belong", "responses": {"200": _ok("Groups")}}},
    "/groups/{key}/join": {"post": {"summary": "Join an open group", "parameters": GROUP_KEY,
                                    "responses": {"200": _ok("Joined")}}},
    "/groups/{key}/leave": {"post": {"summary": "Leave an open group", "parameters": GROUP_KEY,
                                     "responses": {"200": _ok("Left")}}},
    "/groups/{key}/members": {"put": {"summary": "Set a managed group's members (owners, admins)",
                                      "parameters": GROUP_KEY,
                                      "requestBody": _json({"type": "object", "required": ["employee_ids"],
                                                            "properties": {"employee_ids": {
                                                                "type": "array", "items": {"type": "string"}}}}),
                                      "responses": {"200": _ok("Set")}}},
}
SCHEMAS: dict[str, Any] = {"Error": ERROR, "FeedItem": FEED_ITEM, "Post": POST, "Segment": SEGMENT,
                           "Audience": AUDIENCE}


MANAGED_POST = {"type": "object", "description": "A post as its authors and comms managers see it",
                "required": ["id", "status"], "properties": {
                    "id": {"type": "integer"},
                    "status": {"enum": ["draft", "in_review", "scheduled", "published", "expired", "unpublished"]},
                    "audience": {"$ref": "#/components/schemas/Audience"}}}
EVENT = {"type": "object", "required": ["id", "kind", "occurred_at"], "properties": {
    "id": {"type": "string", "description": "Client event id; a repeated id is a duplicate"},
    "post_id": {"anyOf": [ID, {"type": "null"}]},
    "kind": {"enum": ["impression", "open", "read", "digest_open", "digest_click", "session", "acknowledge"]},
    "occurred_at": {"type": "string", "format": "date-time"}, "dwell_ms": {"type": ["integer", "null"]},
    "delivery_id": {"type": ["string", "null"]}, "channel": {"type": ["string", "null"]},
    "surface": {"type": ["string", "null"]}, "position": {"type": ["integer", "null"]}}}
INGEST = {"type": "object", "properties": {
    "accepted": {"type": "integer"}, "duplicates": {"type": "integer"},
    "rejected": {"type": "array", "items": {"type": "object", "properties": {
        "id": {"type": "string"}, "code": {"type": "string"}}}}}}
SCHEMAS.update(ManagedPost=MANAGED_POST, Event=EVENT)
MANAGED = {"200": _ok("The post", {"$ref": "#/components/schemas/ManagedPost"}),
           "403": _ok("You manage this post but may not do this", {"$ref": "#/components/schemas/Error"}),
           "422": _ok("Invalid input", {"$ref": "#/components/schemas/Error"}), **ERRORS}


def _subsystem_paths(components: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Publishing and delivery endpoints, documented from their own request models."""
    from intranet import posts, preferences

    def body(model: Any) -> dict[str, Any]:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(schema.pop("$defs", {}))
        return _json(schema)

    from intranet import groups

    action = lambda summary, model=posts.CommentIn: {"post": {  # noqa: E731
        "summary": summary, "parameters": POST_ID, "requestBody": body(model), "responses": MANAGED}}
    return {
        "/groups": {"post": {"summary": "Create a group (admins)", "requestBody": body(groups.GroupIn),
                             "responses": {"201": _ok("Created")}}},
        "/posts": {"post": {"summary": "Create a draft, or publish at once when publish_at is given",
                            "requestBody": body(posts.PostCreate),
                            "responses": {"201": _ok("Created", {"$ref": "#/components/schemas/ManagedPost"}),
                                          **MANAGED}}},
        "/posts/{post_id}": {"patch": {"summary": "Edit a post you manage", "parameters": POST_ID,
                                       "requestBody": body(posts.PostUpdate), "responses": MANAGED},
                             "delete": {"summary": "Remove a draft; unpublish a published post",
                                        "parameters": POST_ID, "responses": {"204": _ok("Removed"), **MANAGED}}},
        "/posts/{post_id}/submit": action("Submit a draft for review"),
        "/posts/{post_id}/approve": action("Approve and publish or schedule", posts.PublishIn),
        "/posts/{post_id}/request-changes": action("Send back to the author with a comment"),
        "/posts/{post_id}/publish": action("Publish now or at publish_at", posts.PublishIn),
        "/posts/{post_id}/unpublish": action("Remove from feeds and future digests"),
        "/manage/posts": {"get": {"summary": "Posts you manage", "parameters": [
            {"name": "status", "in": "query", "schema": {"type": "string"}},
            {"name": "cursor", "in": "query", "schema": {"type": "string"}, "description": "next_cursor of a page"},
            {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 200}}],
            "responses": {"200": _ok("A page")}}},
        "/manage/posts/{post_id}": {"get": {"summary": "A post you manage, with history", "parameters": POST_ID,
                                            "responses": MANAGED}},
        "/events": {"post": {"summary": "Record a batch of reading events (CSRF token may be in the body)",
                             "requestBody": _json({"type": "object", "properties": {
                                 "events": {"type": "array", "items": {"$ref": "#/components/schemas/Event"}},
                                 "csrf_token": {"type": "string"}}}),
                             "responses": {"200": _ok("Per-event outcome", INGEST), **ERRORS}}},
        "/me/preferences": {"get": {"summary": "Your delivery preferences", "responses": {"200": _ok("Yours")}},
                            "put": {"summary": "Change your delivery preferences",
                                    "requestBody": body(preferences.PreferencesIn),
                                    "responses": {"200": _ok("Saved"), "422": _ok("Invalid")}}},
        "/me/digest-schedule": {"get": {"summary": "When your next digests go out, and why",
                                        "responses": {"200": _ok("Your schedule")}}},
        "/me/digests/latest": {"get": {"summary": "Your latest digest, as sent",
                                       "responses": {"200": _ok("The digest items")}}},
        "/org/digest-defaults": {
            "get": {"summary": "Organisation digest defaults (comms managers)", "responses": {"200": _ok("Defaults")}},
            "put": {"summary": "Change organisation digest defaults (comms managers)",
                    "requestBody": body(preferences.OrgDefaultsIn), "responses": {"200": _ok("Saved")}}},
        "/posts/{post_id}/attachments": {"post": {
            "summary": "Upload an image or file (multipart field 'file'); type and size checked",
            "parameters": POST_ID, "responses": {"201": _ok("Stored"), "413": _ok("Too large"), **MANAGED}}},
        "/posts/{post_id}/attachments/{attachment_id}": {"delete": {
            "summary": "Remove an attachment", "parameters": POST_ID + [
                {"name": "attachment_id", "in": "path", "required": True, "schema": ID}],
            "responses": {"204": _ok("Removed"), **MANAGED}}},
    }


def register(paths: dict[str, dict[str, Any]], schemas: dict[str, Any] | None = None) -> None:
    """Let a subsystem document its own endpoints (merged by path and method)."""
    for path, operations in paths.items():
        PATHS.setdefault(path, {}).update(operations)
    SCHEMAS.update(schemas or {})


def _error(description: str) -> dict[str, Any]:
    return _ok(description, {"$ref": "#/components/schemas/Error"})


def _with_errors(path: str, method: str, operation: dict[str, Any]) -> dict[str, Any]:
    """*operation* with every error Beacon may answer it with (those it documents itself kept)."""
    errors: dict[str, Any] = {}
    if operation.get("security") != []:
        errors["401"] = _error("Not signed in")
        errors["403"] = _error("Signed in, without the role this needs")
    if "{" in path:
        errors["404"] = _error("Missing, or not yours to see (indistinguishable)")
    if "requestBody" in operation or method in ("post", "put", "patch"):
        errors["400"] = _error("The body cannot be read: not JSON, nested too deeply, or not valid Unicode")
        errors["413"] = _error("The body is larger than INTRANET_MAX_REQUEST_BYTES")
        errors["422"] = _error("Invalid input; the message and details say which field and why")
    if any(p.get("in") == "query" for p in operation.get("parameters", ())):
        errors["422"] = _error("Invalid query parameter")
    return {**operation, "responses": {**errors, **operation.get("responses", {})}}


def document() -> dict[str, Any]:
    """The OpenAPI document for this app (server URL includes the configured prefix)."""
    components = dict(SCHEMAS)
    paths: dict[str, dict[str, Any]] = {}
    for source in (PATHS, _subsystem_paths(components)):
        for path, operations in source.items():
            paths.setdefault(path, {}).update(operations)
    paths = {path: {method: _with_errors(path, method, op) for method, op in operations.items()}
             for path, operations in paths.items()}
    cookie = current_app.session_interface.cookie_name(current_app)  # type: ignore[attr-defined]
    return {
        "openapi": "3.1.0",
        "info": {"title": f"{settings().site.org_name} API", "version": "1"},
        "servers": [{"url": url_for("intranet_api.feed_list").rsplit("/feed", 1)[0]}],
        "components": {
            "schemas": components,
            "securitySchemes": {"session": {"type": "apiKey", "in": "cookie", "name": cookie},
                                "csrf": {"type": "apiKey", "in": "header", "name": "X-CSRFToken"}},
        },
        "security": [{"session": []}],
        "paths": paths,
    }
