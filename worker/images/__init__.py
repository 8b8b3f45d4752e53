"""Images: the sandbox images' catalogue, the offline base, and the BuildKit build tool.

May import: worker.errors, worker.languages, worker.logs, worker.queue (the Celery release the
fleet pins, which the Flower image installs), worker.settings.
"""
