"""Plain HTTP routes beside GraphQL: health, channel webhooks, files."""
