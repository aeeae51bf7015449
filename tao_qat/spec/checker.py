"""Error collector for spec validation: field paths, value rules and one-line messages.

Each error reads ``<file>: <field path>: <rule> (<value>)``, e.g.
``spec.txt: postprocessing_config.target_class_config["car"].clustering_config.dbscan_eps:
must be in [0, 1] (1.5)``. Map entries are shown as ``field["key"]``, repeated entries as
``field[i]``.
"""

from tao_qat.common.errors import SpecError


class SpecValidationError(SpecError):
    """A spec violates one or more rules. ``errors``: every message, in spec order.

    ``str(err)`` is the first error plus a count of the others (one line, for the CLI).
    """

    def __init__(self, errors):
        self.errors = list(errors)
        more = len(self.errors) - 1
        suffix = f" (and {more} more error{'s' if more > 1 else ''})" if more else ""
        super().__init__(self.errors[0] + suffix)


def fmt(value):
    """Format a spec value for a message: floats with 6 significant digits, strings quoted."""
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, str):
        return f'"{value}"'
    return str(value)


def join(path, field):
    """Field path ``path.field`` (just ``field`` at the top level)."""
    return f"{path}.{field}" if path else field


def key_path(path, field, key):
    """Path of map entry ``key`` of map ``field``: ``path.field["key"]``."""
    return f'{join(path, field)}["{key}"]'


def index_path(path, field, index):
    """Path of element ``index`` of repeated ``field``: ``path.field[i]``."""
    return f"{join(path, field)}[{index}]"


def _interval(lo, hi, lo_closed, hi_closed):
    return f"{'[' if lo_closed else '('}{fmt(lo)}, {fmt(hi)}{']' if hi_closed else ')'}"


class Checker:
    """Collects validation errors for one spec file (``source`` names it in every message)."""

    def __init__(self, source):
        self.source = source
        self.errors = []

    def error(self, path, message):
        self.errors.append(f"{self.source}: {path}: {message}")

    # -- presence -------------------------------------------------------------------------
    def require(self, msg, path, field):
        """True if sub-message ``field`` is set; otherwise record "is required"."""
        if msg.HasField(field):
            return True
        self.error(join(path, field), "is required")
        return False

    def non_empty(self, msg, path, field, what="must not be empty"):
        """True if string/repeated/map ``field`` is non-empty; otherwise record ``what``."""
        if len(getattr(msg, field)) > 0:
            return True
        self.error(join(path, field), what)
        return False

    # -- scalar value rules ----------------------------------------------------------------
    def rule(self, msg, path, field, ok, rule):
        """Record ``rule (value)`` unless ``ok(value)``; return whether the value passed."""
        value = getattr(msg, field)
        if ok(value):
            return True
        self.error(join(path, field), f"{rule} ({fmt(value)})")
        return False

    def gt(self, msg, path, *fields, bound=0):
        for field in fields:
            self.rule(msg, path, field, lambda v: v > bound, f"must be > {fmt(bound)}")

    def ge(self, msg, path, *fields, bound=0):
        for field in fields:
            self.rule(msg, path, field, lambda v: v >= bound, f"must be >= {fmt(bound)}")

    def between(self, msg, path, *fields, lo=0, hi=1, lo_closed=True, hi_closed=True):
        """Each field must lie in the interval lo..hi (closed ends by default)."""

        def ok(v):
            above = v >= lo if lo_closed else v > lo
            below = v <= hi if hi_closed else v < hi
            return above and below

        rule = f"must be in {_interval(lo, hi, lo_closed, hi_closed)}"
        for field in fields:
            self.rule(msg, path, field, ok, rule)

    def choice(self, msg, path, field, allowed):
        allowed = list(allowed)
        names = ", ".join(fmt(a) for a in allowed)
        return self.rule(msg, path, field, lambda v: v in allowed, f"must be one of {names}")

    def multiple_of(self, msg, path, field, factor):
        return self.rule(
            msg, path, field, lambda v: v % factor == 0, f"must be divisible by {factor}"
        )

    def not_greater(self, msg, path, low_field, high_field):
        """Record ``low_field: must be <= high_field (a > b)`` when low > high."""
        low, high = getattr(msg, low_field), getattr(msg, high_field)
        if low > high:
            self.error(join(path, low_field), f"must be <= {high_field} ({fmt(low)} > {fmt(high)})")

    # -- maps keyed by target class -----------------------------------------------------------
    def covers(self, msg, path, field, classes, what="target class"):
        """Map ``field`` must have an entry for every name in ``classes`` (extra keys allowed)."""
        entries = getattr(msg, field)
        for name in classes:
            if name not in entries:
                self.error(join(path, field), f'has no entry for {what} "{name}"')
