"""Model answers as Markdown: rendered on the server and sanitised, in one place.

markdown-it-py escapes raw HTML and refuses `javascript:`-style links; nh3 (ammonia) then
keeps only the tags and attributes listed here, so even a parser bug cannot smuggle
markup through. Every page that shows model text (text results, chat, its stream,
history) goes through `render_markdown`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import nh3
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe
from markdown_it import MarkdownIt
from markdown_it.renderer import RendererHTML
from markdown_it.rules_core import StateCore
from markdown_it.token import Token
from markdown_it.utils import EnvType, OptionsDict

LINK_REL = "noopener noreferrer nofollow"
ALLOWED_TAGS = {
    "p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "li", "blockquote",
    "pre", "code", "em", "strong", "del", "s", "a", "table", "thead", "tbody", "tr", "th", "td",
}  # fmt: skip
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "ol": {"start"},
    "code": {"class"},
    "th": {"class"},
    "td": {"class"},
}
ALIGN_CLASSES = {f"text-align:{side}": f"align-{side}" for side in ("left", "center", "right")}


def _image_as_link(
    self: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
) -> str:
    """Images in answers become links: the page loads nothing from hosts a model names."""
    token = tokens[idx]
    label = self.renderInlineAsText(token.children or [], options, env) or "image"
    return f'<a href="{escape(str(token.attrGet("src") or ""))}">{escape(label)}</a>'


def _alignment_as_class(state: StateCore) -> None:
    """Table alignment arrives as a style attribute; the CSP allows none, so use a class."""
    for token in state.tokens:
        if token.type in ("th_open", "td_open"):
            style = token.attrGet("style")
            if style is not None:
                token.attrs.pop("style", None)
                if style in ALIGN_CLASSES:
                    token.attrSet("class", ALIGN_CLASSES[style])


def _code_class(tag: str, name: str, value: str) -> str | None:
    if name == "class":
        keep = tag == "code" and value.startswith("language-") and value[9:].isidentifier()
        return value if keep or value in ALIGN_CLASSES.values() else None
    return value


_parser = MarkdownIt("commonmark", {"html": False, "breaks": True}).enable(
    ["table", "strikethrough"]
)
_parser.add_render_rule("image", _image_as_link)
_parser.core.ruler.push("alignment_as_class", _alignment_as_class)


def _clean(html: str) -> str:
    options: dict[str, Any] = {
        "tags": ALLOWED_TAGS,
        "attributes": ALLOWED_ATTRIBUTES,
        "url_schemes": {"http", "https", "mailto"},
        "link_rel": LINK_REL,
        "attribute_filter": _code_class,
        "set_tag_attribute_values": {"a": {"target": "_blank"}},
    }
    cleaned: str = nh3.clean(html, **options)
    return cleaned


def render_markdown(text: str | None) -> SafeString:
    """Sanitised HTML for a model's Markdown answer."""
    if not text:
        return mark_safe("")
    return mark_safe(_clean(_parser.render(text)))  # noqa: S308 - sanitised by nh3 above
