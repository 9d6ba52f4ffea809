"""The OpenAPI 3.1 description of API v1, served at ``/api/v1/openapi.json``.

Paths are declared as data next to their schemas, so adding an endpoint is adding an entry.
"""
from __future__ import annotations

from typing import Any

from flask import current_app, url_for

ERROR = {"type": "object", "required": ["error"], "properties": {"error": {
    "type": "object", "required": ["code", "message"],
    "properties": {"code": {"type": "string"}, "message": {"type": "string"}, "details": {}}}}}
FEED_ITEM = {"type": "object", "required": ["id", "title", "summary", "topic", "must_read", "published_at", "read",
                                            "acknowledged"],
             "properties": {"id": {"type": "integer"}, "title": {"type": "string"}, "summary": {"type": "string"},
                            "topic": {"type": "string"}, "must_read": {"type": "boolean"},
                            "published_at": {"type": "string", "format": "date-time"},
                            "read": {"type": "boolean"}, "acknowledged": {"type": "boolean"}}}
POST = {"allOf": [{"$ref": "#/components/schemas/FeedItem"}, {"type": "object", "properties": {
    "body_html": {"type": "string", "description": "Sanitized HTML"},
    "expires_at": {"type": ["string", "null"], "format": "date-time"},
    "ack_deadline": {"type": ["string", "null"], "format": "date-time"},
    "rating_style": {"enum": ["stars", "thumbs"]}}}]}
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
POST_ID = [{"name": "post_id", "in": "path", "required": True, "schema": {"type": "integer"}}]

PATHS: dict[str, dict[str, Any]] = {
    "/feed": {"get": {"summary": "Your feed: live posts targeted at you, unacknowledged must-reads first",
                      "parameters": [{"name": "cursor", "in": "query", "schema": {"type": "string"}}],
                      "responses": {"200": _ok("A page", {"type": "object", "properties": {
                          "items": {"type": "array", "items": {"$ref": "#/components/schemas/FeedItem"}},
                          "next_cursor": {"type": ["string", "null"]}}}), **ERRORS}}},
    "/posts/{post_id}": {"get": {"summary": "A post targeted at you, with its body", "parameters": POST_ID,
                                 "responses": {"200": _ok("The post", {"$ref": "#/components/schemas/Post"}),
                                               **ERRORS}}},
    "/posts/{post_id}/read": {"post": {"summary": "Record that you opened the post", "parameters": POST_ID,
                                       "responses": {"200": _ok("Recorded"), **ERRORS}}},
    "/posts/{post_id}/acknowledge": {"post": {"summary": "Acknowledge a must-read post", "parameters": POST_ID,
                                              "responses": {"200": _ok("Acknowledged"), **ERRORS}}},
    "/audiences/preview": {"post": {
        "summary": "Exact audience size and breakdown (comms managers)",
        "requestBody": _json({"type": "object", "required": ["audience"],
                              "properties": {"audience": {"$ref": "#/components/schemas/Audience"}}}),
        "responses": {"200": _ok("Headcounts", PREVIEW),
                      "422": _ok("Invalid audience or unknown value (with suggestions)",
                                 {"$ref": "#/components/schemas/Error"}), **ERRORS}}},
    "/me": {"get": {"summary": "Who you are and your roles", "responses": {"200": _ok("You"), **ERRORS}}},
    "/groups": {"get": {"summary": "Groups and whether you belong", "responses": {"200": _ok("Groups")}},
                "post": {"summary": "Create a group (admins)", "responses": {"201": _ok("Created")}}},
    "/groups/{key}/join": {"post": {"summary": "Join an open group", "responses": {"200": _ok("Joined")}}},
    "/groups/{key}/leave": {"post": {"summary": "Leave an open group", "responses": {"200": _ok("Left")}}},
    "/groups/{key}/members": {"put": {"summary": "Set a managed group's members (owners, admins)",
                                      "responses": {"200": _ok("Set")}}},
}
SCHEMAS: dict[str, Any] = {"Error": ERROR, "FeedItem": FEED_ITEM, "Post": POST, "Segment": SEGMENT,
                           "Audience": AUDIENCE}


def register(paths: dict[str, dict[str, Any]], schemas: dict[str, Any] | None = None) -> None:
    """Let a subsystem document its own endpoints (merged by path and method)."""
    for path, operations in paths.items():
        PATHS.setdefault(path, {}).update(operations)
    SCHEMAS.update(schemas or {})


def document() -> dict[str, Any]:
    """The OpenAPI document for this app (server URL includes the configured prefix)."""
    return {
        "openapi": "3.1.0",
        "info": {"title": f"{current_app.config['INTRANET_ORG_NAME']} API", "version": "1"},
        "servers": [{"url": url_for("intranet_api.feed_list").rsplit("/feed", 1)[0]}],
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"session": {"type": "apiKey", "in": "cookie", "name": "__Host-beacon"},
                                "csrf": {"type": "apiKey", "in": "header", "name": "X-CSRFToken"}},
        },
        "security": [{"session": []}],
        "paths": PATHS,
    }
