"""The API reference page's contents, read from the OpenAPI document (app/api/openapi.yaml): operations by
tag, each with its parameters, request body and responses as rows of fields, its error codes and a curl
example. Nothing here knows the API; it only walks the document."""

import json
from functools import cache

from app.api.openapi import document

METHODS = ("get", "post", "put", "patch", "delete")
MAX_DEPTH = 3  # nested fields shown: `attempts[].id`, not deeper than three levels


def resolve(node, spec=None):
    """`node` with a top-level `$ref` replaced by what it points at (siblings such as description kept)."""
    spec = spec or document()
    while isinstance(node, dict) and "$ref" in node:
        target = spec
        for part in node["$ref"].lstrip("#/").split("/"):
            target = target[part]
        node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def merged(schema):
    """A schema with its `allOf` parts merged into one (properties and required lists joined)."""
    schema = resolve(schema)
    if "allOf" not in schema:
        return schema
    out = {k: v for k, v in schema.items() if k != "allOf"}
    for part in schema["allOf"]:
        part = merged(part)
        for key, value in part.items():
            if key == "properties":
                props = dict(out.get("properties", {}))
                for name, sub in value.items():
                    props[name] = {"allOf": [props[name], sub]} if name in props else sub
                out["properties"] = props
            elif key == "required":
                out["required"] = list(dict.fromkeys(out.get("required", []) + value))
            else:
                out.setdefault(key, value)
    return out


def type_label(schema):
    """`string`, `integer or null`, `array of Item`, `pending | processing | …` for one schema."""
    raw = schema
    schema = merged(schema)
    if "const" in schema:
        return json.dumps(schema["const"])
    if "enum" in schema:
        return " | ".join(str(v) for v in schema["enum"])
    for key in ("oneOf", "anyOf"):
        if key in schema:
            return " or ".join(type_label(s) for s in schema[key])
    types = schema.get("type", "object" if "properties" in schema else "any")
    types = types if isinstance(types, list) else [types]
    labels = []
    for t in types:
        if t == "array":
            labels.append(f"array of {type_label(schema.get('items', {}))}")
        elif t == "object" and isinstance(raw, dict) and "$ref" in raw:
            labels.append(raw["$ref"].rsplit("/", 1)[-1])
        else:
            labels.append(f"{t} ({schema['format']})" if "format" in schema and t == "string" else t)
    return " or ".join(labels)


def _limits(schema):
    parts = []
    for key, text in (("minimum", "≥ {}"), ("maximum", "≤ {}"), ("minLength", "at least {} characters"),
                      ("maxLength", "at most {} characters"), ("maxProperties", "at most {} keys"),
                      ("default", "default {}"), ("pattern", "matches {}")):
        if key in schema:
            value = schema[key]
            parts.append(text.format(json.dumps(value) if key == "default" else value))
    return ", ".join(parts)


def fields(schema, prefix="", depth=0):
    """Rows {name, type, required, description, limits} for a schema's properties, nested ones dotted."""
    schema = merged(schema)
    for key in ("oneOf", "anyOf"):  # `X or null`: show X's fields
        for option in schema.get(key, []):
            if merged(option).get("type") != "null":
                schema = merged(option)
                break
    rows = []
    required = set(schema.get("required", []))
    for name, sub in schema.get("properties", {}).items():
        flat = merged(sub)
        rows.append({"name": prefix + name, "type": type_label(sub), "required": name in required,
                     "description": flat.get("description", ""), "limits": _limits(flat)})
        if depth + 1 < MAX_DEPTH:
            if "properties" in flat or "allOf" in flat or "oneOf" in flat:
                rows += fields(flat, f"{prefix}{name}.", depth + 1)
            elif "array" in (flat.get("type") if isinstance(flat.get("type"), list) else [flat.get("type")]):
                rows += fields(flat.get("items", {}), f"{prefix}{name}[].", depth + 1)
    return rows


def _codes(schema):
    """The error codes a response schema allows (its `code` enum or const), or []."""
    code = merged(merged(merged(schema).get("properties", {}).get("error", {})).get("properties", {})
                  .get("code", {}))
    return list(code.get("enum", [code["const"]] if "const" in code else []))


def _example_body(operation):
    content = resolve(operation.get("requestBody", {})).get("content", {}).get("application/json", {})
    return content.get("example")


def _example_value(parameter):
    return parameter.get("example") or f"<{parameter['name']}>"


def curl(method, path, operation, parameters, base_url):
    url = base_url.rstrip("/") + path
    for p in parameters:
        if p["in"] == "path":
            url = url.replace("{" + p["name"] + "}", str(_example_value(p)))
    lines = [f"curl -s{'' if method == 'get' else ' -X ' + method.upper()} {url}"]
    if operation.get("security", document().get("security")) != []:
        lines.append('-H "Authorization: Bearer $PAYSMITH_KEY"')
    for p in parameters:
        if p["in"] == "header" and p.get("example"):
            lines.append(f"-H '{p['name']}: {p['example']}'")
    body = _example_body(operation)
    if body is not None:
        lines.append("-H 'Content-Type: application/json'")
        lines.append(f"-d '{json.dumps(body)}'")
    return " \\\n  ".join(lines)


def _operation(path, method, item, operation, base_url):
    parameters = [resolve(p) for p in item.get("parameters", []) + operation.get("parameters", [])]
    body = resolve(operation.get("requestBody", {}))
    body_schema = body.get("content", {}).get("application/json", {}).get("schema")
    responses, errors = [], []
    for status, response in operation["responses"].items():
        response = resolve(response)
        schema = response.get("content", {}).get("application/json", {}).get("schema")
        codes = _codes(schema) if schema and str(status).startswith(("4", "5")) else []
        errors += [(status, c) for c in codes]
        responses.append({
            "status": status, "description": response.get("description", ""), "is_error": bool(codes),
            "fields": fields(schema) if schema and not codes else [],
            "headers": [{"name": n, "description": resolve(h).get("description", "")}
                        for n, h in response.get("headers", {}).items()],
        })
    return {
        "id": operation.get("operationId", f"{method}-{path}"), "method": method.upper(), "path": path,
        "summary": operation.get("summary", ""), "description": operation.get("description", ""),
        "auth": operation.get("security", document().get("security")) != [],
        "parameters": [{"name": p["name"], "in": p["in"], "required": p.get("required", False),
                        "type": type_label(p.get("schema", {})), "description": p.get("description", ""),
                        "limits": _limits(merged(p.get("schema", {})))} for p in parameters],
        "body": fields(body_schema) if body_schema else None,
        "responses": responses, "errors": errors,
        "curl": curl(method, path, operation, parameters, base_url),
    }


@cache
def _sections(base_url):
    spec = document()
    by_tag = {t["name"]: {"name": t["name"], "description": t.get("description", ""), "operations": []}
              for t in spec.get("tags", [])}
    for path, item in spec["paths"].items():
        for method in METHODS:
            if method in item:
                operation = item[method]
                tag = (operation.get("tags") or ["Other"])[0]
                by_tag.setdefault(tag, {"name": tag, "description": "", "operations": []})
                by_tag[tag]["operations"].append(_operation(path, method, item, operation, base_url))
    return [section for section in by_tag.values() if section["operations"]]


def reference(base_url):
    """Everything the page shows: the document's info, sections by tag, and the table of error codes."""
    spec = document()
    return {"info": spec["info"], "sections": _sections(base_url), "error_codes": spec.get("x-error-codes", []),
            "auth": resolve(spec["components"]["securitySchemes"]["apiKey"])}
