"""The training loop and a whole run: the Session loop, its state in checkpoints, progress, the NaN hunt, how a run
ended.
"""
