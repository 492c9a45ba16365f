"""Developer documentation (/docs/…): the API reference, rendered on the server from the OpenAPI document
(app/api/openapi.yaml), with no script and nothing from the internet."""

import re

from flask import Blueprint, current_app, render_template
from markupsafe import Markup, escape

from app.docs.reference import reference

bp = Blueprint("docs", __name__, url_prefix="/docs")

_CODE = re.compile(r"`([^`]+)`")


def doc_text(text):
    """The document's descriptions: paragraphs split on blank lines, `code` spans; everything escaped."""
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", text or "") if p.strip()]
    return Markup("".join(
        "<p>" + _CODE.sub(lambda m: f"<code>{m.group(1)}</code>", str(escape(" ".join(p.split())))) + "</p>"
        for p in paragraphs))


bp.add_app_template_filter(doc_text, "doc_text")


@bp.get("/api")
def api_reference():
    ref = reference(current_app.config["PUBLIC_BASE_URL"])
    return render_template("docs/api.html", **ref)
