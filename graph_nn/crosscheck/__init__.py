"""The articles' Keras models, and the proof that the graph models compute the same thing."""
