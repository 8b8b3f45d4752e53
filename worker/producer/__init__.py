"""The producer: a valid submission to its first task. ``intake`` (the problem looked up,
admission, test data and sources stored, the compile shortcut; shared by the Python client and
``runner.submit``), ``admission`` (load bounds and tenants' shares, refused before Redis
fills) and ``workflow`` (the submission as a Celery canvas: compile, one task per test, the
join).

May import: worker.app, worker.compare, worker.contract, worker.data, worker.errors,
worker.keyspace, worker.kinds, worker.languages, worker.messages, worker.outages,
worker.programs, worker.queue, worker.redis_access, worker.settings, worker.verdicts.
"""
