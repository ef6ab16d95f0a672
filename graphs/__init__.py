"""Agent graphs: from an agent definition to a compiled LangGraph graph, and running it.

Importing this package changes nothing global; the server and the worker call
``graphs.patches.install()`` at start.
"""
