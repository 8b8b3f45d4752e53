"""Images: the sandbox images' catalogue, the offline base, and the BuildKit build tool.

May import: worker.errors, worker.languages, worker.logs, worker.settings.
"""
