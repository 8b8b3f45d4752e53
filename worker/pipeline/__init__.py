"""A run's path through a worker: ``tasks`` (``runner.submit``, ``runner.problem`` and the
run's steps), ``compiling`` (the compile step: programs, checkers and interactors, cached),
``scoring`` (the join's decisions: SK, groups, score, verdict), ``events`` (what the core
announces; edges subscribe), ``taskview`` (what operators see of a task), ``runtime`` (what
one worker process holds: pools, judge, stores, clients) and ``readiness`` (a worker's way to
ready: its images pulled, pools prewarmed, consumer connected, each timed).

May import: worker.app, worker.compare, worker.contract, worker.data, worker.errors,
worker.images (pulling a new host's images), worker.judging, worker.keyspace, worker.kinds,
worker.languages, worker.logs, worker.messages, worker.metrics, worker.producer,
worker.programs, worker.queue, worker.sandbox, worker.settings, worker.verdicts.
"""
