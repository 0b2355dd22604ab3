"""Run config that is checked when a run starts: a value out of range fails the step at once, naming the
setting, and is never retried (the same config would fail the same way three times over)."""

from dagster import Config, Failure


def out_of_range(name: str, value, low=None, high=None, *, low_open: bool = False) -> list[str]:
    """[] when low <(=) value <= high (None: unbounded), else one message naming the setting."""
    if value is None:
        return []
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and value > high
    if not (too_low or too_high):
        return []
    lower = "" if low is None else f"{'>' if low_open else '>='} {low}"
    upper = "" if high is None else f"<= {high}"
    return [f"{name} must be {' and '.join(p for p in (lower, upper) if p)} (got {value})"]


class CheckedConfig(Config):
    def problems(self) -> list[str]:
        return []

    def check(self, asset: str) -> None:
        if problems := self.problems():
            raise Failure(description=f"invalid run config for {asset}: " + "; ".join(problems),
                          allow_retries=False)
