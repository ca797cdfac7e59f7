"""When the training loop does more than train: train scalars, histograms, evaluations, epoch ends, checkpoints.

Each rule answers for a global step that went from `previous` to `step`: has it passed a multiple of its
interval?  A single process's steps go up by one, where that is `step % every == 0`; a cluster's async steps
skip the numbers other workers made, and a mark passed over still counts.
"""


def crossed(previous, step, every):
    """Has the global step passed a multiple of `every` on its way from previous to step?"""
    return step // every > previous // every


class Cadence:
    def __init__(self, config, schedule):
        self.config, self.schedule = config, schedule

    def logs(self, previous, step):
        return crossed(previous, step, self.config.log_every)

    def histograms(self, previous, step):
        return crossed(previous, step, self.config.histogram_every)

    def evaluates(self, previous, step):
        """At every --eval-every steps (once an epoch without it), and at the last step."""
        every = self.config.eval_every or self.schedule.steps_per_epoch
        return step >= self.schedule.total_steps or crossed(previous, step, every)

    def ends_epoch(self, previous, step):
        return crossed(previous, step, self.schedule.steps_per_epoch)

    def checkpoints(self, previous, step):
        """At every --checkpoint-every steps; evaluations save one too."""
        return bool(self.config.checkpoint_every) and crossed(previous, step, self.config.checkpoint_every)

    def acts_after(self, step):
        """Does the loop need the session between step and step + 1: for histograms, a trace, the profiler, an
        evaluation, the end of an epoch or a checkpoint?  Where it does, a run of --steps-per-run steps ends at
        step.  (Train scalars come from the run's per-step values.)"""
        config = self.config
        profile_first, profile_last = config.profile_steps or (None, None)
        return (
            self.histograms(step, step + 1)  # taken before the update of step + 1
            or step in config.trace_steps
            or step + 1 in config.trace_steps
            or step + 1 == profile_first
            or step == profile_last
            or self.evaluates(step - 1, step)
            or self.ends_epoch(step - 1, step)
            or self.checkpoints(step - 1, step)
        )
