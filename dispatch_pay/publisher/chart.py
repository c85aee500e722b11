"""The daily revenue chart, drawn on the server as inline SVG (no JavaScript)."""

from __future__ import annotations

from datetime import date

from markupsafe import Markup, escape

from dispatch_pay.money import format_money

WIDTH, HEIGHT = 960, 220
LEFT, RIGHT, TOP, BOTTOM = 64, 8, 12, 28


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
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    high = _scale_top(max([v for _, v in days] + [1]))
    low = -_scale_top(-min(v for _, v in days)) if days and min(v for _, v in days) < 0 else 0
    span = high - low

    def y(value: int) -> float:
        return TOP + plot_h * (high - value) / span

    parts: list[str] = []
    for value in sorted({low, 0, high // 2, high}):
        parts.append(
            f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(value):.1f}" '
            f'y2="{y(value):.1f}"/><text class="axis" x="{LEFT - 6}" y="{y(value) + 4:.1f}" '
            f'text-anchor="end">{escape(format_money(value, currency))}</text>'
        )
    slot = plot_w / max(len(days), 1)
    bar_w = max(slot * 0.7, 1.0)
    label_every = max(1, round(len(days) / 8))
    for n, (day, value) in enumerate(days):
        x = LEFT + n * slot + (slot - bar_w) / 2
        top, bottom = (y(value), y(0)) if value >= 0 else (y(0), y(value))
        css = "bar neg" if value < 0 else "bar"
        tip = f"{day.isoformat()}: {format_money(value, currency)}"
        parts.append(
            f'<rect class="{css}" x="{x:.1f}" y="{top:.1f}" width="{bar_w:.1f}" '
            f'height="{max(bottom - top, 0):.1f}" data-date="{day.isoformat()}" '
            f'data-amount="{value}"><title>{escape(tip)}</title></rect>'
        )
        if n % label_every == 0:
            parts.append(
                f'<text class="axis" x="{LEFT + n * slot + slot / 2:.1f}" y="{HEIGHT - 10}" '
                f'text-anchor="middle">{day.strftime("%b %d")}</text>'
            )
    label = escape(f"Daily net revenue in {currency.upper()}")
    # Every interpolated value is a number, a date or escaped text: the markup is safe.
    return Markup(  # noqa: S704
        f'<svg class="revenue-chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{label}" data-currency="{escape(currency)}" '
        f'xmlns="http://www.w3.org/2000/svg">{"".join(parts)}</svg>'
    )
