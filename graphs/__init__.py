"""Agent graphs: from an agent definition to a compiled LangGraph graph, and running it."""

import os

# Checkpoints are read back with msgpack; strict mode refuses to rebuild arbitrary classes, so
# reading a checkpoint can never execute code. LangGraph reads this once, at import.
os.environ.setdefault("LANGGRAPH_STRICT_MSGPACK", "true")
