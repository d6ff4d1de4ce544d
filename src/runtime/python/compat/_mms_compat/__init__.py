"""Implementation behind the `mms` and `ts` compatibility aliases.

The worker imports this package (a name no user module should clash with); the
`mms.*` and `ts.*` modules only re-export from here, so a model that ships its own
`mms` package shadows the aliases but never breaks the worker itself.
"""
