"""Pure rules and use cases of the iMBrace conversation inbox.

Nothing in this package performs I/O or imports a framework: rules are plain
functions of stored facts and an explicit ``now``; use cases talk to the
outside world only through the Protocols in :mod:`domain.ports`.
"""
