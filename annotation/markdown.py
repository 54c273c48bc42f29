"""Campaign instructions: Markdown written by a manager, shown to annotators as HTML.

One function, `instructions_html`, renders and sanitises; the settings preview, the annotator
workspace (through the task payload) and the API's read-only `instructions_html` field all
call it, so what the manager previews is what annotators see. DB-free."""

from __future__ import annotations

import nh3
from markdown_it import MarkdownIt

# CommonMark plus tables and strikethrough; raw HTML in the source is escaped by the
# renderer (html=False) and the output is still passed through nh3, so a manager's text
# can never carry script, event handlers or javascript: links into an annotator's page.
_md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False}).enable(
    ["table", "strikethrough"]
)

_TAGS = {
    "p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "strong", "em", "del", "s", "code",
    "pre", "blockquote", "ul", "ol", "li", "a", "table", "thead", "tbody", "tr", "th", "td",
    "img",
}  # fmt: skip
_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title"},
    "ol": {"start"},
    "th": {"style"},
    "td": {"style"},
}


def instructions_html(text: str | None) -> str:
    """Sanitised HTML for a campaign's Markdown instructions ("" for none). Links open in a
    new tab without handing the annotator's page to the target (rel=noopener noreferrer)."""
    if not text or not text.strip():
        return ""
    rendered = _md.render(text)
    return nh3.clean(
        rendered,
        tags=_TAGS,
        attributes=_ATTRIBUTES,
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer",
        filter_style_properties={"text-align"},
        set_tag_attribute_values={"a": {"target": "_blank"}},
    ).strip()
