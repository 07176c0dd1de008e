// The tray icons' SVG, one per lab state: the colour says the state (green healthy, amber
// degraded, red down) and "down" also crosses the gate out, for whoever does not tell
// the colours apart. macOS template variants are black on transparent (the menu bar
// tints them), so there the shape carries the state: a dot for degraded, the cross for down.
export type TrayState = "healthy" | "degraded" | "down";

export const TRAY_COLOURS: Record<TrayState, { fill: string; ring: string }> = {
  healthy: { fill: "#16a34a", ring: "#14532d" },
  degraded: { fill: "#f59e0b", ring: "#78350f" },
  down: { fill: "#dc2626", ring: "#7f1d1d" },
};

const GATE = "M 10.5 24 V 15 A 5.5 5.5 0 0 1 21.5 15 V 24";

export function traySvg(state: TrayState): string {
  const c = TRAY_COLOURS[state];
  const cross = state === "down" ? `<path d="M 8 8 L 24 24" stroke="#ffffff" stroke-width="3.2" stroke-linecap="round"/>` : "";
  return `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32">
  <circle cx="16" cy="16" r="14.5" fill="${c.fill}" stroke="${c.ring}" stroke-width="1.5"/>
  <path d="${GATE}" fill="none" stroke="#ffffff" stroke-width="3.4" stroke-linecap="round"/>
  ${cross}
</svg>`;
}

export function trayTemplateSvg(state: TrayState): string {
  const badge =
    state === "degraded"
      ? `<circle cx="25" cy="7" r="5.5" fill="#000"/>`
      : state === "down"
        ? `<path d="M 5 5 L 27 27" stroke="#000" stroke-width="3.4" stroke-linecap="round"/>`
        : "";
  return `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32">
  <path d="M 7 29 V 14 A 9 9 0 0 1 25 14 V 29" fill="none" stroke="#000" stroke-width="4" stroke-linecap="round"/>
  ${badge}
</svg>`;
}
