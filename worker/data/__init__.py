"""What the fleet keeps in Redis beside the broker, each content-addressed or keyed by id:
``storage`` (test data and sources, by reference), ``problems`` (registered problems),
``artifacts`` (compiled programs, a cache shared between hosts) and ``availability`` (which
languages the workers can judge now).

May import: worker.contract, worker.errors, worker.keyspace, worker.kinds, worker.messages,
worker.programs.
"""
