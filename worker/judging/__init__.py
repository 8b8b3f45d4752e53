"""Verdicts from sandbox runs: ``judge`` (compile once, run one test, turn what the supervisor
measured into a verdict), ``runs`` (a run's job and what its report says), ``interaction``
(interactors wired to the program) and ``selftest`` (each language's self-test in a real
sandbox before a worker takes work).

May import: worker.checkers, worker.compare, worker.contract, worker.errors, worker.kinds,
worker.languages, worker.metrics, worker.programs, worker.sandbox, worker.verdicts.
"""
