"""The HTTP server over both families' inference APIs (``python infer.py serve``; docs/serving.md).

``config`` holds the settings, ``batcher`` groups requests that arrive together into one batch per model,
``services`` adapts each family's ``generate_each`` to the batcher, ``uploads`` keeps request files in the
work folder, ``app`` holds the endpoints and ``cli`` the command. Needs the ``serve`` extra.
"""
