"""What a run leaves for TensorBoard and for people: summaries, traces, profiles, Debugger V2 dumps, scalars read
back.
"""
