"""One shape for what an instrument reports: a Report, the lines that say what it found, which the command line
prints (`print(report)`, or line by line as they come).

An instrument that measures for minutes (parity, bench, inspect --grappler) writes its report as a generator:
its lines are computed as they are read, so that the first sections show while the next are measured.  What
the generator returns (parity's verdict, bench's figures) is the report's `outcome` once every line is read.
"""

import functools


class Report:
    def __init__(self, lines):
        self.pending, self.read, self.outcome = iter(lines), [], None

    def lines(self):
        """Every line: those already read, then the others as they are computed."""
        yield from self.read
        while self.pending is not None:
            try:
                line = next(self.pending)
            except StopIteration as end:
                self.pending, self.outcome = None, end.value
                return
            self.read.append(line)
            yield line

    def __str__(self):
        return "\n".join(self.lines())


def reported(lines):
    """Makes a generator of report lines a function that returns their Report."""

    @functools.wraps(lines)
    def report(*args, **kwargs):
        return Report(lines(*args, **kwargs))

    return report


def table(rows):
    """The rows' cells in aligned columns, each line indented by two spaces."""
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        yield "  " + "  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip()


def counts(counter):
    """A Counter as a table, the most common first."""
    return table([(name, count) for name, count in counter.most_common()])
