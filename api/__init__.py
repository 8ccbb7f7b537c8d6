"""Everything that touches the outside world: HTTP, GraphQL, MongoDB, SMTP, CLI."""
