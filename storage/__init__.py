"""Everything that touches Postgres: the pool, migrations and one module per table group.

Storage functions take a connection; the caller owns the transaction.
"""
