"""The daily revenue chart, drawn on the server as inline SVG (no JavaScript)."""

from __future__ import annotations

from datetime import date

from markupsafe import Markup, escape

from dispatch_pay.money import format_money

# The chart is as wide as its box and HEIGHT pixels tall. Horizontal positions are
# percentages and vertical ones pixels, with no viewBox: the SVG is never scaled, so
# its labels keep their CSS size (readable on a 390px phone as on a wide screen).
HEIGHT = 220
TOP, BOTTOM = 26, 30  # room for the top grid label above the plot, the dates below it


def _scale_top(peak: int) -> int:
    """A round number of minor units at or above the peak, so the grid labels read well."""
    step = 1
    while step * 10 < peak:
        step *= 10
    for factor in (1, 2, 5, 10):
        if step * factor >= peak:
            return step * factor
    return step * 10


def revenue_chart(days: list[tuple[date, int]], currency: str) -> Markup:
    """Bars of net revenue per day; negative days (more refunded than sold) hang below zero."""
    plot_h = HEIGHT - TOP - BOTTOM
    high = _scale_top(max([v for _, v in days] + [1]))
    low = -_scale_top(-min(v for _, v in days)) if days and min(v for _, v in days) < 0 else 0
    span = high - low

    def y(value: int) -> float:
        return TOP + plot_h * (high - value) / span

    parts: list[str] = []
    for value in sorted({low, 0, high // 2, high}):
        # Grid labels sit just above their line, at the left, on a halo over the bars.
        parts.append(
            f'<line class="grid" x1="0" x2="100%" y1="{y(value):.1f}" y2="{y(value):.1f}"/>'
            f'<text class="axis y" x="2" y="{y(value) - 4:.1f}">'
            f"{escape(format_money(value, currency))}</text>"
        )
    slot = 100 / max(len(days), 1)
    bar_w = slot * 0.7
    label_every = max(1, round(len(days) / 8))
    for n, (day, value) in enumerate(days):
        x = n * slot + (slot - bar_w) / 2
        top, bottom = (y(value), y(0)) if value >= 0 else (y(0), y(value))
        css = "bar neg" if value < 0 else "bar"
        tip = f"{day.isoformat()}: {format_money(value, currency)}"
        parts.append(
            f'<rect class="{css}" x="{x:.2f}%" y="{top:.1f}" width="{bar_w:.2f}%" '
            f'height="{max(bottom - top, 0):.1f}" data-date="{day.isoformat()}" '
            f'data-amount="{value}"><title>{escape(tip)}</title></rect>'
        )
        if n % label_every == 0:
            # Every other date label gives way on narrow screens (class "alt", see the CSS).
            alt = " alt" if (n // label_every) % 2 else ""
            anchor, at = ("start", n * slot) if n == 0 else ("middle", n * slot + slot / 2)
            parts.append(
                f'<text class="axis x{alt}" x="{at:.2f}%" y="{HEIGHT - 8}" '
                f'text-anchor="{anchor}">{day.strftime("%b %d")}</text>'
            )
    label = escape(f"Daily net revenue in {currency.upper()}")
    # Every interpolated value is a number, a date or escaped text: the markup is safe.
    return Markup(  # noqa: S704
        f'<svg class="revenue-chart" width="100%" height="{HEIGHT}" role="img" '
        f'aria-label="{label}" data-currency="{escape(currency)}" '
        f'xmlns="http://www.w3.org/2000/svg">{"".join(parts)}</svg>'
    )
