"""The script tag a site pastes to embed a channel's widget."""

from __future__ import annotations

from html import escape


def widget_snippet(public_url: str, widget_key: str) -> str:
    src = escape(f"{public_url.rstrip('/')}/widget.js", quote=True)
    return f'<script src="{src}" data-widget-key="{escape(widget_key, quote=True)}" async></script>'
