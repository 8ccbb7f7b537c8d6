"""The web widget's visitor side: sessions (``POST /widget/v1/sessions``), the visitor's small
GraphQL schema (``/widget/graphql``, HTTP and WebSocket), presence from the widget's
connections, and the client address's location. The rules are in :mod:`domain.widget` and
:mod:`domain.usecases.widget`; the browser's script is served elsewhere (``/widget.js``).
"""
