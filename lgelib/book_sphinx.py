"""A Sphinx extension for the book (``book/_config.yml``: ``extra_extensions``).

sphinx-thebe 0.3.1 on Sphinx 7.4 puts its inline configuration script on every page twice; the second copy stops
with "Identifier 'THEBE_JS_URL' has already been declared" in the reader's browser. Of identical scripts a page
keeps the first.
"""

from __future__ import annotations

from typing import Any


def _script_key(script: Any) -> tuple:
    attributes = getattr(script, "attributes", {}) or {}
    filename = getattr(script, "filename", script) or ""  # an inline script's is None or "", depending on who added it
    return str(filename), tuple(sorted((k, str(v)) for k, v in attributes.items()))


def unique_scripts(app: Any, pagename: str, templatename: str, context: dict, doctree: Any) -> None:
    """Drop repeated scripts (same file or body, same attributes) from a page's context."""
    seen: set[tuple] = set()
    unique = []
    for script in context.get("script_files", []):
        key = _script_key(script)
        if key not in seen:
            seen.add(key)
            unique.append(script)
    context["script_files"][:] = unique  # in place: the builder's own list


def setup(app: Any) -> dict[str, Any]:
    app.connect("html-page-context", unique_scripts, priority=900)  # after the handlers that add scripts
    return {"parallel_read_safe": True, "parallel_write_safe": True}
