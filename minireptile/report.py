"""Plain-text tables for the studies' results, printed alike by the command line and the notebooks."""


def table(rows, header):
    """Right-aligned columns, two spaces apart, under a header row."""
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    line = lambda r: "  ".join(str(c).rjust(w) for c, w in zip(r, widths))
    return "\n".join([line(header)] + [line(r) for r in rows])


def points(d):
    """A paired difference {"mean", "ci95"} (fractions) in points: "+4.4 +- 2.4"."""
    return f"{100 * d['mean']:+.1f} +- {100 * d['ci95']:.1f}"
