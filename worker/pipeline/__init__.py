"""A run's path through a worker: ``tasks`` (``runner.submit``, ``runner.problem`` and the
run's steps), ``compiling`` (the compile step: programs, checkers and interactors, cached),
``scoring`` (the join's decisions: SK, groups, score, verdict), ``events`` (what the core
announces; edges subscribe), ``taskview`` (what operators see of a task) and ``runtime``
(what one worker process holds: pools, judge, stores, clients).

May import: worker.app, worker.compare, worker.contract, worker.data, worker.errors,
worker.judging, worker.keyspace, worker.languages, worker.logs, worker.messages,
worker.metrics, worker.producer, worker.programs, worker.queue, worker.sandbox,
worker.settings, worker.verdicts.
"""
