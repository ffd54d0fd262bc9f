"""HTML for the page: Jinja2 templates that escape everything, and Pygments highlighting.

Everything a person or a model wrote (titles, requests, notes, code, output) reaches the page
through Jinja2's autoescaping; the only markup that is not escaped is Pygments' own output,
which escapes the code it wraps. Highlighting uses CSS classes (``HtmlFormatter``'s default):
the page's Content-Security-Policy forbids inline styles, so the colours come from
``/static/code.css``, made from the same formatter (:func:`code_css`).

Highlighting is CPU work in pure Python (a long snippet takes milliseconds), so the handlers
call :func:`highlight` and :func:`highlight_diff` in a worker thread, off the event loop.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping
from importlib import resources
from typing import Any

import jinja2
from markupsafe import Markup
from pygments import highlight as pygmentize
from pygments.formatters import HtmlFormatter
from pygments.lexer import Lexer
from pygments.lexers import DiffLexer, TextLexer, get_lexer_by_name
from pygments.util import ClassNotFound

__all__ = ["code_css", "highlight", "highlight_diff", "page", "static", "static_url"]

_TYPES = {"js": "text/javascript", "css": "text/css"}
_STYLE = "default"
_CLASS = "highlight"


@functools.cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("bot.web", "templates"),
        autoescape=True,  # every value is escaped unless it is Markup (Pygments' output)
        undefined=jinja2.StrictUndefined,  # a missing word is a bug, not a blank
        trim_blocks=True,
        lstrip_blocks=True,
    )


def page(template: str, values: Mapping[str, Any]) -> str:
    """The HTML of ``template`` (a file in ``bot/web/templates/``) with ``values``."""
    return _environment().get_template(template).render(values)


@functools.cache
def _lexer(fence: str) -> Lexer:
    try:
        return get_lexer_by_name(fence, stripnl=False, ensurenl=True)
    except ClassNotFound:
        return TextLexer(stripnl=False, ensurenl=True)


def highlight(code: str, fence: str) -> Markup:
    """``code`` as highlighted HTML with line numbers, lexed as the language whose fence tag
    is ``fence`` (plain text for a tag Pygments does not know)."""
    formatter = HtmlFormatter(cssclass=_CLASS, linenos="table", wrapcode=True)
    return Markup(pygmentize(code, _lexer(fence), formatter))  # Pygments escapes the code


def highlight_diff(diff: str) -> Markup:
    """A unified diff as highlighted HTML (added and removed lines coloured)."""
    formatter = HtmlFormatter(cssclass=_CLASS, wrapcode=True)
    lexer = DiffLexer(stripnl=False, ensurenl=True)
    return Markup(pygmentize(diff, lexer, formatter))  # Pygments escapes the code


@functools.cache
def code_css() -> str:
    """The highlighting colours, as the stylesheet ``/static/code.css``."""
    return str(HtmlFormatter(style=_STYLE).get_style_defs(f".{_CLASS}"))


@functools.cache
def _static_files() -> dict[str, bytes]:
    folder = resources.files("bot.web").joinpath("static")
    files = {name: folder.joinpath(name).read_bytes() for name in ("app.js", "app.css")}
    files["code.css"] = code_css().encode()
    return files


def static(name: str) -> tuple[bytes, str]:
    """A static file's bytes and content type (``KeyError`` for a name that is not one)."""
    body = _static_files()[name]
    return body, _TYPES[name.rpartition(".")[2]]


@functools.cache
def static_url(name: str) -> str:
    """The URL of a static file, named by its content's hash, so that browsers may keep it
    for good and still get a changed one at once."""
    digest = hashlib.sha256(_static_files()[name]).hexdigest()[:12]
    return f"/static/{name}?v={digest}"
