"""The web widget (a WEB_WIDGET channel's chat on a customer's site)."""
