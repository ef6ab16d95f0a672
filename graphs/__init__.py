"""Agent graphs: from an agent definition to a compiled LangGraph graph, and running it."""
